#!/usr/bin/env bash
# Builds Garage 2.5.0 (the peer of the read-path benchmarks, #14) into a
# cache directory outside the repository, once: 11 to 18 minutes on 2 cores.
# Not part of CI. Prints the binary's path.
#
#   scripts/install-garage.sh            # -> $CAIRN_PEER_CACHE/garage-2.5.0/bin/garage
set -euo pipefail
VERSION=2.5.0
CACHE=${CAIRN_PEER_CACHE:-$HOME/.cache/cairn-peers}
ROOT="$CACHE/garage-$VERSION"
if [[ ! -x "$ROOT/bin/garage" ]]; then
  mkdir -p "$CACHE"
  echo "building garage $VERSION into $ROOT (11 to 18 minutes on 2 cores)" >&2
  cargo install --locked "garage@$VERSION" --root "$ROOT" >&2
fi
echo "$ROOT/bin/garage"

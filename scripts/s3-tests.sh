#!/usr/bin/env bash
# Runs Ceph's s3-tests functional suite (github.com/ceph/s3-tests, from a
# checkout or source archive) against a fresh `cairn dev` cluster. Not part
# of CI: the whole suite takes a while and many cases test features Cairn
# does not have yet; use it to measure an S3 feature against the suite.
#
#   scripts/s3-tests.sh S3TESTS_DIR [pytest -k expression]
#
# Environment: BIN_DIR (default target/release), PORT (default 19950),
# LIFECYCLE_DAY (default 10s, as the suite's lifecycle cases expect; the
# x-amz-expiration header cases expect real days: LIFECYCLE_DAY=86400s),
# OWNERSHIP (default object-writer: the suite expects ACLs on new buckets,
# as RGW has them; bucket-owner-enforced is S3's and Cairn's default).
# Writes the per-case outcome to s3-tests-report.txt and the whole pytest
# output to s3-tests-output.txt (TB=short for tracebacks; both gitignored), and prints
# the pass/fail counts. The suite needs a second user ("alt") and a few
# more; they are added to the gateway's credentials, which `cairn dev`
# reloads by restarting the gateway it supervises.
set -euo pipefail
SUITE=$(cd "$1" && pwd)
FILTER=${2:-}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN_DIR=${BIN_DIR:-$ROOT/target/release}
PORT=${PORT:-19950}
# A venv of its own: the suite's dependencies must not leak into .venv, where
# they would hide a missing entry in tests/s3/requirements.txt.
VENV=$ROOT/.venv-s3-tests
[[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q -r "$ROOT/tests/s3/requirements.txt" munch gevent isodate pytz httplib2 lxml PyYAML

DATA=$(mktemp -d)
# The suite's lifecycle cases count a "day" as 10 s (RGW's lc_debug_interval).
"$BIN_DIR/cairn" dev --data-dir "$DATA" --port "$PORT" --bin-dir "$BIN_DIR" \
  --lifecycle-day "${LIFECYCLE_DAY:-10s}" --lifecycle-every 2s \
  --default-object-ownership "${OWNERSHIP:-object-writer}" >"$DATA.log" 2>&1 &
DEV=$!
trap 'kill -INT $DEV 2>/dev/null; wait $DEV 2>/dev/null; rm -rf "$DATA" "$DATA.log"' EXIT
for _ in $(seq 1 300); do [[ -f $DATA/cluster.json ]] && break; sleep 0.2; done

read -r ACCESS SECRET GATEWAY <<<"$(python3 -c "import json; d = json.load(open('$DATA/cluster.json')); print(d['access_key'], d['secret_key'], d['gateway']['pid'])")"
for user in alt tenant iam root altroot; do
  printf '\n[[credentials]]\naccess_key = "%s-key"\nsecret_key = "%s-secret-key"\n' "$user" "$user" >>"$DATA/gateway.toml"
done
kill -9 "$GATEWAY"
for _ in $(seq 1 100); do
  curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break
  sleep 0.2
done

CONF=$DATA/s3tests.conf
# A configured key is its own user: its id (in ACLs and owners) is the key.
user() { # section name access-key secret [extra]
  printf '[%s]\ndisplay_name = %s\nuser_id = %s\nemail = %s@example.com\naccess_key = %s\nsecret_key = %s\n%s\n' \
    "$1" "$3" "$3" "$2" "$3" "$4" "${5:-}"
}
{
  printf '[DEFAULT]\nhost = 127.0.0.1\nport = %s\nis_secure = False\nssl_verify = False\n\n' "$PORT"
  printf '[fixtures]\nbucket prefix = cairn-{random}-\niam name prefix = s3-tests-\niam path prefix = /s3-tests/\n\n'
  user "s3 main" main "$ACCESS" "$SECRET" "api_name = default"
  user "s3 alt" alt alt-key alt-secret-key
  user "s3 tenant" tenant tenant-key tenant-secret-key "tenant = testx"
  user "iam" iam iam-key iam-secret-key
  user "iam root" RGW11111111111111111 root-key root-secret-key
  user "iam alt root" RGW22222222222222222 altroot-key altroot-secret-key
} >"$CONF"

REPORT=$ROOT/s3-tests-report.txt
cd "$SUITE"
set +e
S3TEST_CONF=$CONF "$VENV/bin/python" -m pytest s3tests/functional/test_s3.py s3tests/functional/test_headers.py \
  ${FILTER:+-k "$FILTER"} -p no:cacheprovider -q -rA --tb="${TB:-line}" 2>&1 \
  | tee "$ROOT/s3-tests-output.txt" | grep -E '^(PASSED|FAILED|ERROR|SKIPPED) ' | sort >"$REPORT"
set -e
echo "passed $(grep -c '^PASSED' "$REPORT"), failed $(grep -c '^FAILED' "$REPORT"), errors $(grep -c '^ERROR' "$REPORT"), skipped $(grep -c '^SKIPPED' "$REPORT") (details: $REPORT)"

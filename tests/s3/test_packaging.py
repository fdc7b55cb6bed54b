"""The systemd units in packaging/systemd: valid (`systemd-analyze verify`),
hardened (`systemd-analyze security` exposure at most 2.0, "OK"), and each
starts a binary that takes the flags the unit passes."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import BIN_DIR, REPO

UNITS = sorted((REPO / "packaging" / "systemd").glob("*.service"))
ANALYZE = shutil.which("systemd-analyze")
pytestmark = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")


@pytest.fixture(scope="module")
def units(tmp_path_factory):
    """The units with ExecStart pointing at the binaries under test (verify
    checks that the binary exists), templates instantiated."""
    out = tmp_path_factory.mktemp("units")
    names = []
    for unit in UNITS:
        text = unit.read_text().replace("/usr/local/bin/", f"{BIN_DIR.resolve()}/")
        name = unit.name.replace("@.service", "@disk1.service")
        (out / name).write_text(text)
        names.append(name)
    return out, names


def test_there_is_a_unit_for_every_service():
    assert [u.name for u in UNITS] == ["cairn-gateway.service", "cairn-meta.service",
                                       "cairn-node@.service", "cairn-scrubber.service"]


def test_units_verify_cleanly(units):
    directory, names = units
    result = subprocess.run([ANALYZE, "verify", "--man=no", *names], cwd=directory,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_units_are_hardened(units):
    directory, names = units
    for name in names:
        result = subprocess.run([ANALYZE, "security", "--offline=true", name], cwd=directory,
                                capture_output=True, text=True, timeout=60)
        level = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout)
        assert level, result.stdout + result.stderr
        assert float(level.group(1)) <= 2.0, f"{name}: exposure {level.group(1)}"


def test_every_unit_starts_a_binary_with_the_flags_it_passes():
    for unit in UNITS:
        exec_start = re.search(r"^ExecStart=(\S+) (.*)$", unit.read_text(), re.M)
        binary = BIN_DIR / Path(exec_start.group(1)).name
        flags = re.findall(r"--[a-z-]+", exec_start.group(2))
        help_text = subprocess.run([str(binary), "--help"], capture_output=True, text=True,
                                   timeout=30).stdout
        for flag in flags:
            assert flag in help_text, f"{unit.name}: {binary.name} has no {flag}"

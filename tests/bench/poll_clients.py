"""Device poll clients for bench_dispatch: standard library only, so a spawned process starts fast and clean."""

import http.client
import time


def poller(port: int, device_tokens: list[str], go, seconds: float, out) -> None:
    try:
        _poll(port, device_tokens, go, seconds, out)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which would otherwise wait forever
        out.put((0, 1, 0, [], repr(exc)))


def _poll(port: int, device_tokens: list[str], go, seconds: float, out) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    polls = errors = empty = 0
    latencies = []
    go.wait()
    deadline = time.time() + seconds
    i = 0
    while time.time() < deadline:
        token = device_tokens[i % len(device_tokens)]
        i += 1
        started = time.perf_counter()
        try:
            conn.request("GET", "/api/device/v1/commands", headers={"Authorization": f"Bearer {token}"})
            response = conn.getresponse()
            body = response.read()
        except (http.client.HTTPException, OSError):
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            errors += 1
            continue
        latencies.append(time.perf_counter() - started)
        if response.status != 200:
            errors += 1
        elif body.startswith(b'{"commands":[]'):
            empty += 1
        polls += 1
        if response.getheader("Connection", "").lower() == "close":
            conn.close()
    out.put((polls, errors, empty, latencies, None))

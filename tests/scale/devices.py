"""The device fleet of the scale-out test: every device a client of the public device API with its own token.

    python tests/scale/devices.py --url http://10.77.0.50:8080 --tokens tokens.json --out devices.json

Built on the same API as the demo simulator (aggregator/demo/simulator), but it keeps the books the test needs,
which the demo one does not: each command a device received (when first, from which poll) and each reading the
platform acknowledged. Each device polls GET /api/device/v1/commands at the interval the answer asks for and
accepts each new command (POST .../ack); every READING_SECONDS (30) it adds its next five-minute reading to its buffer and
posts the whole buffer, emptied only by a 200 whose `received` counts it all, as a meter that must not lose data
does. A failed request (no answer, 5xx) is tried again at the device's next turn; a 4xx is an answer (an ack of
a command a newer round superseded gets 409) and counted apart.

Standard library only; requests go out over a pool of kept-alive connections. On SIGTERM it stops, waits for the
requests in flight and writes its books to --out.
"""

import argparse
import asyncio
import json
import random
import signal
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

READING_SECONDS = 30.0
CONNECTIONS = 64
TIMEOUT = 15.0


class Client:
    def __init__(self, url: str):
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port or 80
        self.pool: asyncio.Queue = asyncio.Queue()
        for _ in range(CONNECTIONS):
            self.pool.put_nowait(None)

    async def request(self, method: str, path: str, token: str, body: bytes | None = None) -> tuple[int, bytes, float]:
        """(status, body, seconds from sending to the whole answer: not the wait for a pooled connection)."""
        conn = await self.pool.get()
        started = time.monotonic()
        try:
            if conn is None:
                conn = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), TIMEOUT)
            reader, writer = conn
            head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nAuthorization: Bearer {token}\r\n"
            if body is not None:
                head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            writer.write(head.encode() + b"\r\n" + (body or b""))
            status, data, keep = await asyncio.wait_for(_response(reader), TIMEOUT)
            if not keep:
                writer.close()
                conn = None
            return status, data, time.monotonic() - started
        except BaseException:
            if conn is not None:
                conn[1].close()
            conn = None
            raise
        finally:
            self.pool.put_nowait(conn)


async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if ":" in line)}
    if "content-length" in headers:
        data = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        data = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            data += (await reader.readexactly(size + 2))[:-2]
    else:
        data = await reader.read()
        return status, data, False
    return status, data, headers.get("connection", "").lower() != "close"


class Fleet:
    def __init__(self, client: Client, devices: list[dict], reading_base: datetime):
        self.client = client
        self.devices = devices
        self.base = reading_base
        self.stopping = False
        self.requests = 0
        self.failures: list[tuple[float, str, str]] = []
        self.latencies: dict[str, list[float]] = {"poll": [], "readings": [], "ack": []}
        self.commands: dict[int, dict[str, dict]] = {d["device"]: {} for d in devices}
        self.acked: list[tuple[int, str]] = []
        self.buffered: dict[int, list[dict]] = {d["device"]: [] for d in devices}
        self.polls = 0
        self.refused: list[tuple[float, str, str]] = []
        self.slow: list[tuple[float, str, float]] = []  # (sent at, what, seconds) of requests over a second

    async def _call(self, what: str, method: str, path: str, token: str, body: bytes | None = None):
        self.requests += 1
        try:
            status, data, took = await self.client.request(method, path, token, body)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError) as exc:
            self.failures.append((time.time(), what, repr(exc)[:200]))
            return None, None
        self.latencies[what].append(took)
        if took > 1.0:
            self.slow.append((time.time() - took, what, took))
        if status >= 500:
            self.failures.append((time.time(), what, f"HTTP {status} {data[:200]!r}"))
            return status, None
        if status >= 300:  # an answer, not a failure: e.g. acknowledging a command a newer round superseded
            self.refused.append((time.time(), what, f"HTTP {status} {data[:200]!r}"))
            return status, None
        return status, json.loads(data) if data else None

    async def _poller(self, device: dict) -> None:
        await asyncio.sleep(random.uniform(0, 5))
        while not self.stopping:
            _, body = await self._call("poll", "GET", "/api/device/v1/commands", device["token"])
            wait = 5.0
            if body is not None:
                self.polls += 1
                seen = self.commands[device["device"]]
                for command in body["commands"]:
                    if command["id"] not in seen:
                        seen[command["id"]] = {
                            "event": command["event"],
                            "sequence": command.get("sequence"),
                            "kind": command["kind"],
                            "first_seen": time.time(),
                            "acked": False,
                        }
                    if not seen[command["id"]]["acked"]:
                        ack = json.dumps({"status": "accepted"}).encode()
                        status, _ = await self._call(
                            "ack", "POST", f"/api/device/v1/commands/{command['id']}/ack", device["token"], ack
                        )
                        seen[command["id"]]["acked"] = status is not None and status < 500
                wait = float(body.get("poll_after_seconds", 5))
            await asyncio.sleep(wait * random.uniform(0.9, 1.1))

    async def _meter(self, device: dict) -> None:
        await asyncio.sleep(random.uniform(0, READING_SECONDS))
        k = 0
        while not self.stopping:
            start = (self.base + timedelta(minutes=5 * k)).isoformat()
            self.buffered[device["device"]].append(
                {
                    "device": device["device"],
                    "start": start,
                    "interval_seconds": 300,
                    "kwh": round(0.1 + k % 10 * 0.01, 3),
                }
            )
            k += 1
            batch = self.buffered[device["device"]]
            payload = json.dumps({"readings": batch}).encode()
            _, body = await self._call("readings", "POST", "/api/device/v1/readings", device["token"], payload)
            if body is not None and body.get("received") == len(batch):
                self.acked.extend((r["device"], r["start"]) for r in batch)
                self.buffered[device["device"]] = []
            await asyncio.sleep(READING_SECONDS * random.uniform(0.9, 1.1))

    async def run(self, stop: asyncio.Event) -> None:
        tasks = [asyncio.create_task(job(d)) for d in self.devices for job in (self._poller, self._meter)]
        await stop.wait()
        self.stopping = True
        await asyncio.wait(tasks, timeout=TIMEOUT + 5)

    def books(self) -> dict:
        def quantiles(values: list[float]) -> dict:
            values = sorted(values)
            if not values:
                return {}
            return {
                "count": len(values),
                "p50_ms": round(values[len(values) // 2] * 1000, 1),
                "p95_ms": round(values[int(len(values) * 0.95)] * 1000, 1),
                "max_ms": round(values[-1] * 1000, 1),
            }

        return {
            "requests": self.requests,
            "polls": self.polls,
            "failures": self.failures,
            "slow": self.slow,
            "refused": self.refused,
            "latency": {k: quantiles(v) for k, v in self.latencies.items()},
            "commands": self.commands,
            "acked_readings": self.acked,
            "unacknowledged_readings": sum(len(b) for b in self.buffered.values()),
        }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--tokens", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    with open(args.tokens) as source:
        devices = json.load(source)
    # Readings of the last days, one five-minute interval after another: each one new to the platform.
    base = (datetime.now(UTC) - timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    fleet = Fleet(Client(args.url), devices, base)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print(f"{len(devices)} devices against {args.url}", flush=True)
    await fleet.run(stop)
    with open(args.out, "w") as out:
        json.dump(fleet.books(), out)
    print(
        f"{fleet.requests} requests, {len(fleet.failures)} failed, {len(fleet.acked)} readings acknowledged", flush=True
    )


if __name__ == "__main__":
    asyncio.run(main())

"""A small HTTP/1.1 load balancer for the scale-out test: round-robin over the web hosts, kept-alive connections.

    python tests/scale/proxy.py --listen 10.77.0.50:8080 --backend 10.77.0.21:8000 --backend 10.77.0.22:8000 --stats out.json

A backend that refuses a connection, does not accept one within CONNECT_TIMEOUT, or drops one before answering is
taken out for DOWN_SECONDS (then tried again). A request is retried on the next backend when the failed one cannot
have received it (the connection was never made), and also when it was sent but is a GET: the device API's GETs
are safe to repeat. A POST whose backend went away after it was sent is answered 502, as a load balancer that does
not retry non-idempotent requests answers; the device sends it again. Responses are buffered whole before any byte
goes to the client, so a client never sees half of one.

On SIGTERM it writes its figures (requests per backend, retries, answers it made itself, backend down/up moments).
"""

import argparse
import asyncio
import json
import signal
import time

CONNECT_TIMEOUT = 1.0
RESPONSE_TIMEOUT = 30.0
DOWN_SECONDS = 2.0
IDLE_SECONDS = 4.0  # a kept-alive backend connection idle longer is closed rather than reused


class BackendGone(Exception):
    pass


class Backend:
    def __init__(self, address: str):
        host, _, port = address.rpartition(":")
        self.address, self.host, self.port = address, host, int(port)
        self.down_until = 0.0
        self.idle: list[tuple[float, asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.requests = 0
        self.failures = 0


class Proxy:
    def __init__(self, backends: list[str]):
        self.backends = [Backend(b) for b in backends]
        self.turn = 0
        self.started = time.time()
        self.events: list[dict] = []
        self.retries = 0
        self.answered_502 = 0
        self.answered_503 = 0
        self.requests = 0

    def _note(self, what: str, backend: Backend, detail: str = "") -> None:
        self.events.append({"at": time.time(), "event": what, "backend": backend.address, "detail": detail})
        print(f"{time.strftime('%H:%M:%S')} {what} {backend.address} {detail}", flush=True)

    def _take_out(self, backend: Backend, reason: str) -> None:
        backend.failures += 1
        if backend.down_until <= time.monotonic():
            self._note("down", backend, reason)
        backend.down_until = time.monotonic() + DOWN_SECONDS
        for _, _, writer in backend.idle:
            writer.close()
        backend.idle.clear()

    def _order(self) -> list[Backend]:
        self.turn = (self.turn + 1) % len(self.backends)
        ordered = self.backends[self.turn :] + self.backends[: self.turn]
        now = time.monotonic()
        return [b for b in ordered if b.down_until <= now] or ordered  # all down: try them anyway

    async def _connection(self, backend: Backend) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bool]:
        now = time.monotonic()
        while backend.idle:
            since, reader, writer = backend.idle.pop()
            if now - since < IDLE_SECONDS and not reader.at_eof():
                return reader, writer, True
            writer.close()
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(backend.host, backend.port), CONNECT_TIMEOUT
            )
        except (OSError, TimeoutError) as exc:
            raise BackendGone(f"connect: {exc!r}") from exc
        return reader, writer, False

    async def _exchange(self, backend: Backend, request: bytes) -> tuple[bytes, bool]:
        """(the whole response, whether the backend connection may be reused); BackendGone if it never answered."""
        reader, writer, reused = await self._connection(backend)
        try:
            writer.write(request)
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), RESPONSE_TIMEOUT)
            headers = _headers(head)
            status = int(head.split(b" ", 2)[1])
            body = b""
            if "content-length" in headers:
                body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), RESPONSE_TIMEOUT)
            elif headers.get("transfer-encoding", "").lower() == "chunked":
                body = await asyncio.wait_for(_chunked(reader), RESPONSE_TIMEOUT)
            elif status >= 200 and status not in (204, 304):
                body = await asyncio.wait_for(reader.read(), RESPONSE_TIMEOUT)
                headers["connection"] = "close"
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError) as exc:
            writer.close()
            raise BackendGone(f"{'reused ' if reused else ''}connection: {exc!r}") from exc
        keep = headers.get("connection", "").lower() != "close"
        if keep:
            backend.idle.append((time.monotonic(), reader, writer))
        else:
            writer.close()
        return head + body, keep

    async def forward(self, method: str, request: bytes) -> bytes:
        self.requests += 1
        for attempt, backend in enumerate(self._order()):
            if attempt:
                self.retries += 1
            backend.requests += 1
            try:
                response, _ = await self._exchange(backend, request)
                return response
            except BackendGone as exc:
                sent = not str(exc).startswith("connect")
                self._take_out(backend, str(exc))
                if sent and method != "GET":
                    self.answered_502 += 1
                    return _answer(502, "the web host went away with the request")
        self.answered_503 += 1
        return _answer(503, "no web host answered")

    async def client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")[0]
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
                    return
                headers = _headers(head)
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                method = head.split(b" ", 1)[0].decode()
                forwarded = head[:-2] + f"X-Forwarded-For: {peer}\r\n\r\n".encode()
                response = await self.forward(method, forwarded + body)
                writer.write(response)
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    return
        except (OSError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    def figures(self) -> dict:
        return {
            "requests": self.requests,
            "retries": self.retries,
            "answered_502": self.answered_502,
            "answered_503": self.answered_503,
            "backends": {b.address: {"requests": b.requests, "failures": b.failures} for b in self.backends},
            "events": self.events,
        }


def _headers(head: bytes) -> dict[str, str]:
    lines = head.decode("latin-1").split("\r\n")[1:]
    return {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if ":" in line)}


async def _chunked(reader: asyncio.StreamReader) -> bytes:
    out = bytearray()
    while True:
        size_line = await reader.readuntil(b"\r\n")
        out += size_line
        size = int(size_line.split(b";", 1)[0], 16)
        if size == 0:
            out += await reader.readuntil(b"\r\n")  # no trailers here: the blank line
            return bytes(out)
        out += await reader.readexactly(size + 2)


def _answer(status: int, message: str) -> bytes:
    body = json.dumps({"detail": message}).encode()
    reason = {502: "Bad Gateway", 503: "Service Unavailable"}[status]
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", required=True)
    parser.add_argument("--backend", action="append", required=True)
    parser.add_argument("--stats", required=True)
    args = parser.parse_args()
    proxy = Proxy(args.backend)
    host, _, port = args.listen.rpartition(":")
    server = await asyncio.start_server(proxy.client, host, int(port), backlog=1024)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print(f"proxy on {args.listen} -> {', '.join(args.backend)}", flush=True)
    await stop.wait()
    server.close()  # not waiting for the clients' kept-alive connections to end
    with open(args.stats, "w") as out:
        json.dump(proxy.figures(), out)


if __name__ == "__main__":
    asyncio.run(main())

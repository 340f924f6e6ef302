"""The market simulator (`manage.py simulate_market`): a wholesale market for the demo and the tests, met only
over HTTP, as a real one would be. It never reads the platform's database.

- It serves the market's side of the HTTP adapter (aggregator.market.adapters.http): POST /offers takes an offer
  version (a later version of the same window replaces the one held, until the window clears), GET /awards lists
  the awards it has published after a cursor. Requests carry the bearer token it was given, if it was given one.
- It clears each offer it holds when the offer is due (its deadline has passed, or `clear_delay` after it arrived,
  whichever is sooner): per interval a merit order (aggregator.market.clearing) over every offer of the same market
  kind in that interval, segments priced at or below the interval's LMP taken cheapest first up to the interval's
  system need (less what earlier clearings of it took), each paid the LMP. An offer cleared in some interval gets one
  award with those intervals; an offer cleared nowhere gets none.
- It publishes each award on GET /awards and, given the platform's URL and a market token, POSTs it to
  /api/inbound/v1/awards as well (retried while the platform is unreachable or failing; a 4xx refusal is logged and
  not retried).
- Given `dispatch_in`, it sends one real-time dispatch that many minutes after it started: a dispatch instruction
  (POST /api/inbound/v1/instructions) for a resource it knows (one it holds an offer of, or one it was told), for
  `dispatch_minutes`, at half the kW the resource offered (or 10 kW for one it knows no offer of). An instruction
  rather than a real-time award: a market dispatches a day-ahead resource in real time without a real-time offer
  of it. Where the window falls inside an award of that resource, the instruction replaces the award's event
  (`replaces_instruction_id` is the award id) and carries the rest of the award's schedule with it.

Prices: its own series, never the platform's. Either a CSV (`start,price_per_mwh` with optional `resource` and
`need_kw` columns; an interval the file does not price clears nothing), or the built-in synthetic LMP shape in the
market's time zone: a summer day (May to October) with a midday solar dip and an evening peak at 19:00, a winter
day with a morning shoulder and an evening peak at 18:00.

State (offers held, awards published, the dispatch sent) lives in memory, and in a JSON file if given one, so a
restart or a `--once` run carries on where the last one stopped.
"""

import csv
import http.client
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

from aggregator.market import award_rules, clearing

log = logging.getLogger("vpp.market_simulator")

TICK_SECONDS = 5.0
MAX_BODY = 5 * 1024 * 1024
POST_ATTEMPTS = 20

# $/MWh by local hour: CAISO-like shapes (the duck curve in summer).
SUMMER = (38, 35, 33, 32, 33, 38, 45, 42, 30, 22, 15, 12, 10, 12, 18, 30, 55, 95, 150, 175, 140, 90, 60, 45)
WINTER = (45, 42, 40, 40, 42, 50, 70, 85, 75, 55, 45, 40, 38, 38, 42, 55, 80, 120, 135, 115, 90, 70, 55, 50)


def parse_time(value: str) -> datetime:
    at = datetime.fromisoformat(value)
    if at.tzinfo is None:
        raise ValueError(f"{value!r} has no UTC offset")
    return at.astimezone(UTC)


# --- prices --------------------------------------------------------------------------------------------------


class SyntheticPrices:
    """The built-in LMP shape in the market's local time, and a flat system need."""

    def __init__(self, *, time_zone: str, need_kw: float):
        self.zone = ZoneInfo(time_zone)
        self.need = need_kw

    def lmp(self, start: datetime, resource: str) -> float | None:
        local = start.astimezone(self.zone)
        shape = SUMMER if 5 <= local.month <= 10 else WINTER
        return float(shape[local.hour])

    def need_kw(self, start: datetime) -> float:
        return self.need


class CsvPrices:
    """Prices (and, optionally, the need) per interval start from a CSV file: start,price_per_mwh[,resource][,need_kw].
    A row with a resource prices that resource's node; one without prices every other."""

    def __init__(self, path: str | Path, *, need_kw: float):
        self.prices: dict[tuple[str, datetime], float] = {}
        self.needs: dict[datetime, float] = {}
        self.need = need_kw
        with open(path, newline="") as handle:
            for n, row in enumerate(csv.DictReader(handle), start=2):
                try:
                    start = parse_time(row["start"].strip())
                    self.prices[((row.get("resource") or "").strip(), start)] = float(row["price_per_mwh"])
                    if (row.get("need_kw") or "").strip():
                        self.needs[start] = float(row["need_kw"])
                except (KeyError, ValueError, AttributeError) as exc:
                    raise ValueError(f"{path} line {n}: {exc}") from None

    def lmp(self, start: datetime, resource: str) -> float | None:
        return self.prices.get((resource, start), self.prices.get(("", start)))

    def need_kw(self, start: datetime) -> float:
        return self.needs.get(start, self.need)


# --- the platform, as the market's client of it ---------------------------------------------------------------


class Platform:
    """The platform's inbound API (POST awards and instructions with a market token)."""

    def __init__(self, base_url: str, token: str, timeout: float = 10.0):
        parts = urlsplit(base_url)
        self.https, self.host, self.port = parts.scheme == "https", parts.hostname, parts.port
        self.prefix = parts.path.rstrip("/")
        self.token, self.timeout = token, timeout

    def post(self, path: str, body: dict) -> tuple[int, dict | str]:
        kind = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        conn = kind(self.host, self.port, timeout=self.timeout)
        try:
            conn.request(
                "POST",
                self.prefix + path,
                body=json.dumps(body).encode(),
                headers={
                    "Authorization": f"Bearer {self.token}",
                    "Content-Type": "application/json",
                    "Accept": "application/json",
                },
            )
            response = conn.getresponse()
            raw = response.read()
        finally:
            conn.close()
        try:
            return response.status, json.loads(raw) if raw else {}
        except ValueError:
            return response.status, raw.decode(errors="replace")[:500]


# --- the market ----------------------------------------------------------------------------------------------


class OfferRefused(Exception):
    def __init__(self, status: int, message: str):
        self.status = status
        super().__init__(message)


@dataclass
class MarketSimulator:
    market: str
    prices: SyntheticPrices | CsvPrices
    accept_token: str | None = None
    platform: Platform | None = None
    clear_delay: timedelta | None = None
    net_benefits_price: float | None = None
    dispatch_in: timedelta | None = None
    dispatch_minutes: int = 30
    resources: list[str] = field(default_factory=list)
    state_path: Path | None = None
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self):
        self.lock = threading.RLock()
        self.offers: dict[str, dict] = {}  # offer id -> {"offer", "received_at", "receipt", "cleared"}
        self.awards: list[dict] = []  # {"seq", "award", "posted": None | "ok" | "refused" | "gave_up", "attempts"}
        self.taken: dict[str, float] = {}  # "<market kind> <interval start>" -> kW cleared so far
        self.dispatched: dict | None = None
        self.seq = 0
        if self.state_path and self.state_path.exists():
            saved = json.loads(self.state_path.read_text())
            self.offers, self.awards, self.taken = saved["offers"], saved["awards"], saved["taken"]
            self.seq = saved["seq"]  # the real-time dispatch is once per run: not carried over

    def _save(self) -> None:
        if not self.state_path:
            return
        state = {
            "offers": self.offers,
            "awards": self.awards,
            "taken": self.taken,
            "dispatched": self.dispatched,
            "seq": self.seq,
        }
        temporary = self.state_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(state))
        temporary.replace(self.state_path)

    # --- offers in ---

    def receive_offer(self, offer: dict, *, now: datetime | None = None) -> tuple[int, dict]:
        """(status, answer) for a POSTed offer; OfferRefused for one the market will not hold."""
        now = now or datetime.now(UTC)
        try:
            offer_id, resource, kind = offer["offer_id"], offer["resource"], offer["market_kind"]
            window_start = parse_time(offer["window_start"])
            parse_time(offer["deadline"])
            minutes = int(offer["interval_minutes"])
            for interval in offer["intervals"]:
                parse_time(interval["start"])
                float(interval["max_kw"]), float(interval.get("min_kw") or 0)
                [(float(kw), float(price)) for kw, price in interval["segments"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise OfferRefused(400, f"not an offer: {exc!r}") from None
        if not isinstance(offer_id, str) or not isinstance(resource, str) or minutes <= 0:
            raise OfferRefused(400, "offer_id and resource are strings, interval_minutes positive")
        if offer.get("market") not in (None, self.market):
            raise OfferRefused(400, f"this is the {self.market} market, not {offer.get('market')}")
        with self.lock:
            held = self.offers.get(offer_id)
            if held is not None:
                if held["offer"] != offer:
                    raise OfferRefused(409, f"offer {offer_id} was submitted with other content")
                return 200, {"receipt": held["receipt"], "offer_id": offer_id}
            for other_id, other in list(self.offers.items()):
                same_window = (other["offer"]["resource"], other["offer"]["market_kind"]) == (resource, kind) and (
                    parse_time(other["offer"]["window_start"]) == window_start
                )
                if not same_window:
                    continue
                if other["cleared"]:
                    raise OfferRefused(409, f"the window of offer {offer_id} has cleared (offer {other_id})")
                del self.offers[other_id]  # a later version replaces the one held
            self.seq += 1
            receipt = f"SIM-{self.market}-{self.seq:06d}"
            self.offers[offer_id] = {
                "offer": offer,
                "received_at": now.isoformat(),
                "receipt": receipt,
                "cleared": False,
            }
            if resource not in self.resources:
                self.resources.append(resource)
            self._save()
        log.info("offer %s of %s (%s) held, receipt %s", offer_id, resource, kind, receipt)
        return 201, {"receipt": receipt, "offer_id": offer_id}

    def awards_after(self, after: str | None, limit: int = 200) -> dict:
        """GET /awards: the awards published after the cursor (a sequence number), oldest first."""
        position = int(after) if after and after.isdigit() else 0
        with self.lock:
            later = [a for a in self.awards if a["seq"] > position]
        page = later[: max(1, min(limit, 1000))]
        cursor = str(page[-1]["seq"]) if page else str(position)
        return {"awards": [a["award"] for a in page], "cursor": cursor, "more": len(later) > len(page)}

    # --- clearing ---

    def _due(self, held: dict, now: datetime) -> bool:
        if held["cleared"]:
            return False
        due_at = parse_time(held["offer"]["deadline"])
        if self.clear_delay is not None:
            due_at = min(due_at, datetime.fromisoformat(held["received_at"]) + self.clear_delay)
        return due_at <= now

    def clear_due(self, *, now: datetime | None = None) -> list[dict]:
        """Clear every offer that is due; returns the awards published."""
        now = now or datetime.now(UTC)
        with self.lock:
            due = [(offer_id, held) for offer_id, held in sorted(self.offers.items()) if self._due(held, now)]
            if not due:
                return []
            by_interval: dict[tuple[str, datetime], list[tuple[str, dict, dict]]] = {}
            for offer_id, held in due:
                offer = held["offer"]
                for interval in offer["intervals"]:
                    key = (offer["market_kind"], parse_time(interval["start"]))
                    by_interval.setdefault(key, []).append((offer_id, offer, interval))
            cleared: dict[str, list[dict]] = {}
            for (kind, start), entries in sorted(by_interval.items()):
                resource = entries[0][1]["resource"]
                lmp = self.prices.lmp(start, resource)
                if lmp is None:
                    continue
                lmp = round(lmp, 4)
                if self.net_benefits_price is not None and lmp < self.net_benefits_price:
                    continue  # demand response is not dispatched below the net-benefits price
                taken_key = f"{kind} {start.isoformat()}"
                need = max(0.0, self.prices.need_kw(start) - self.taken.get(taken_key, 0.0))
                bids = [
                    clearing.Bid(
                        offer_id,
                        tuple((float(kw), float(price)) for kw, price in interval["segments"]),
                        min_kw=float(interval.get("min_kw") or 0),
                        max_kw=float(interval["max_kw"]),
                    )
                    for offer_id, _, interval in entries
                ]
                result = clearing.clear_interval(bids, lmp=lmp, need_kw=need)
                for offer_id, offer, _ in entries:
                    kw = result.get(offer_id)
                    if not kw:
                        continue
                    end = start + timedelta(minutes=int(offer["interval_minutes"]))
                    cleared.setdefault(offer_id, []).append(
                        {"start": start.isoformat(), "end": end.isoformat(), "kw": kw, "price_per_mwh": lmp}
                    )
                    self.taken[taken_key] = self.taken.get(taken_key, 0.0) + kw
            published = []
            zone = getattr(self.prices, "zone", UTC)
            for offer_id, held in due:
                held["cleared"] = True
                if offer_id not in cleared:
                    log.info("offer %s cleared nothing", offer_id)
                    continue
                offer = held["offer"]
                self.seq += 1
                day = parse_time(offer["window_start"]).astimezone(zone).date()
                prefix = "DA" if offer["market_kind"] == "day_ahead" else "RT"
                award = {
                    "award_id": f"{prefix}-{day.isoformat()}-{self.seq:04d}",
                    "offer_id": offer_id,
                    "resource": offer["resource"],
                    "market_kind": offer["market_kind"],
                    "intervals": cleared[offer_id],
                }
                self.awards.append({"seq": self.seq, "award": award, "posted": None, "attempts": 0})
                published.append(award)
                log.info(
                    "award %s for offer %s: %d interval(s), %.1f kW at most",
                    award["award_id"],
                    offer_id,
                    len(award["intervals"]),
                    max(i["kw"] for i in award["intervals"]),
                )
            self._save()
        return published

    # --- to the platform ---

    def post_pending(self) -> int:
        """POST the awards the platform has not answered yet; returns how many it took."""
        if self.platform is None:
            return 0
        with self.lock:
            pending = [a for a in self.awards if a["posted"] is None]
        took = 0
        for entry in pending:
            try:
                status, answer = self.platform.post("/api/inbound/v1/awards", entry["award"])
            except (OSError, http.client.HTTPException) as exc:
                status, answer = 0, str(exc)
            with self.lock:
                entry["attempts"] += 1
                if status in (200, 201):
                    entry["posted"] = "ok"
                    took += 1
                    event = answer.get("event") if isinstance(answer, dict) else None
                    log.info("award %s taken by the platform: event %s", entry["award"]["award_id"], event)
                elif 400 <= status < 500:
                    entry["posted"] = "refused"
                    log.warning("award %s refused by the platform (%s): %s", entry["award"]["award_id"], status, answer)
                elif entry["attempts"] >= POST_ATTEMPTS:
                    entry["posted"] = "gave_up"
                    log.warning(
                        "award %s: the platform did not take it after %d attempts",
                        entry["award"]["award_id"],
                        POST_ATTEMPTS,
                    )
                self._save()
        return took

    def _dispatch_resource(self) -> tuple[str, float] | None:
        """The resource to dispatch and its kW: the first one offered, at half its typical offered kW."""
        with self.lock:
            for held in sorted(self.offers.values(), key=lambda h: h["received_at"]):
                offer = held["offer"]
                kws = sorted(float(i["max_kw"]) for i in offer["intervals"])
                if kws and kws[len(kws) // 2] > 0:
                    return offer["resource"], max(1.0, round(kws[len(kws) // 2] / 2, 1))
        if self.resources:
            return self.resources[0], 10.0
        return None

    def dispatch_instruction(self, *, now: datetime) -> dict | None:
        """The real-time dispatch instruction for now, or None when there is no resource to dispatch."""
        chosen = self._dispatch_resource()
        if chosen is None:
            return None
        resource, kw = chosen
        at = now.astimezone(UTC).replace(second=0, microsecond=0)
        start = at + timedelta(minutes=5 - at.minute % 5 + 5)  # a 5-minute boundary 5 to 10 minutes out
        end = start + timedelta(minutes=self.dispatch_minutes)
        instruction = {
            "instruction_id": f"RT-DISP-{start:%Y%m%dT%H%M}-{resource}",
            "resource": resource,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "target_kw": kw,
        }
        award = self._award_covering(resource, start, end)
        if award is not None and (begins := min(parse_time(i["start"]) for i in award["intervals"])) > start:
            # The award begins inside the window (tomorrow's day-ahead award, dispatched just before midnight): a
            # replacement would run from now to the award's end, past the 24 hours an event may last. The window
            # ends where the award begins instead, an instruction of its own.
            instruction["end"], award = begins.isoformat(), None
        if award is not None:
            base = award_rules.schedule(
                [
                    award_rules.Awarded(
                        parse_time(i["start"]),
                        parse_time(i["end"]),
                        Decimal(str(i["kw"])),
                        Decimal(str(i["price_per_mwh"])),
                    )
                    for i in award["intervals"]
                ]
            )
            over = [award_rules.Piece(start, end, Decimal(str(kw)))]
            begin = now.astimezone(UTC).replace(microsecond=0)
            pieces = award_rules.overlay(base, over, not_before=begin)
            instruction.update(
                start=pieces[0].start.isoformat(),
                end=pieces[-1].end.isoformat(),
                intervals=[
                    {"start": p.start.isoformat(), "end": p.end.isoformat(), "target_kw": float(p.kw)} for p in pieces
                ],
                replaces_instruction_id=award["award_id"],
            )
            del instruction["target_kw"]
        return instruction

    def _award_covering(self, resource: str, start: datetime, end: datetime) -> dict | None:
        with self.lock:
            for entry in reversed(self.awards):
                award = entry["award"]
                if award["resource"] != resource or entry["posted"] != "ok":
                    continue
                first = min(parse_time(i["start"]) for i in award["intervals"])
                last = max(parse_time(i["end"]) for i in award["intervals"])
                if first < end and start < last:
                    return award
        return None

    def dispatch_if_due(self, *, now: datetime | None = None) -> dict | None:
        """Send the run's one real-time dispatch when it is due; returns what was sent."""
        now = now or datetime.now(UTC)
        if self.platform is None or self.dispatch_in is None or self.dispatched is not None:
            return None
        if now < self.started_at + self.dispatch_in:
            return None
        instruction = self.dispatch_instruction(now=now)
        if instruction is None:
            return None
        try:
            status, answer = self.platform.post("/api/inbound/v1/instructions", instruction)
        except (OSError, http.client.HTTPException) as exc:
            log.warning("real-time dispatch not sent (%s); trying again", exc)
            return None
        if status >= 500:
            return None
        with self.lock:
            self.dispatched = {"instruction": instruction, "status": status, "sent_at": now.isoformat()}
            self._save()
        if status in (200, 201):
            log.info(
                "real-time dispatch %s: %s from %s, event %s",
                instruction["instruction_id"],
                instruction["resource"],
                instruction["start"],
                answer.get("id") if isinstance(answer, dict) else None,
            )
        else:
            log.warning("real-time dispatch %s refused (%s): %s", instruction["instruction_id"], status, answer)
        return instruction

    def tick(self, *, now: datetime | None = None) -> None:
        now = now or datetime.now(UTC)
        self.clear_due(now=now)
        self.post_pending()
        self.dispatch_if_due(now=now)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.tick()
            except Exception:  # a bad tick must not stop the market
                log.exception("market simulator tick failed")
            stop.wait(TICK_SECONDS)

    # --- HTTP ---

    def server(self, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
        """The market's HTTP side, bound (port 0: any free one) and not yet serving."""
        server = ThreadingHTTPServer((host, port), _handler(self))
        server.daemon_threads = True
        return server


def _handler(market: MarketSimulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):
            log.debug("%s %s", self.address_string(), format % args)

        def _answer(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _authorised(self) -> bool:
            if market.accept_token is None:
                return True
            if self.headers.get("Authorization", "") == f"Bearer {market.accept_token}":
                return True
            self._answer(HTTPStatus.UNAUTHORIZED, {"error": "a bearer token is required"})
            return False

        def do_GET(self):
            parts = urlsplit(self.path)
            if parts.path.rstrip("/") != "/awards":
                return self._answer(HTTPStatus.NOT_FOUND, {"error": "no such path"})
            if not self._authorised():
                return None
            query = parse_qs(parts.query)
            limit = query.get("limit", ["200"])[0]
            body = market.awards_after(query.get("after", [None])[0], int(limit) if limit.isdigit() else 200)
            return self._answer(HTTPStatus.OK, body)

        def do_POST(self):
            if urlsplit(self.path).path.rstrip("/") != "/offers":
                return self._answer(HTTPStatus.NOT_FOUND, {"error": "no such path"})
            length = self.headers.get("Content-Length", "")
            if not length.isdigit() or int(length) > MAX_BODY:
                return self._answer(HTTPStatus.LENGTH_REQUIRED, {"error": f"a Content-Length up to {MAX_BODY}"})
            raw = self.rfile.read(int(length))
            if not self._authorised():
                return None
            try:
                offer = json.loads(raw)
                if not isinstance(offer, dict):
                    raise ValueError("not an object")
                status, body = market.receive_offer(offer)
            except ValueError as exc:
                return self._answer(HTTPStatus.BAD_REQUEST, {"error": f"not JSON: {exc}"})
            except OfferRefused as exc:
                return self._answer(exc.status, {"error": str(exc)})
            return self._answer(status, body)

    return Handler


def serve_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name="market-simulator", daemon=True)
    thread.start()
    return thread


def wait_until_up(platform: Platform, *, seconds: float) -> bool:
    """Whether the platform answers within `seconds` (any HTTP answer counts)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            status, _ = platform.post("/api/inbound/v1/awards", {})
            return status > 0
        except (OSError, http.client.HTTPException):
            if time.monotonic() > deadline:
                return False
            time.sleep(1)

"""Awards: what a market cleared of our offers (a day-ahead schedule) or instructs now (real-time), checked against
the offer and turned into a dispatch event in the same transaction.

An award arrives on the inbound API (POST /api/inbound/v1/awards) or through the market's adapter (`poll_awards`,
run by the beat); both call `receive_award`, the one place its rules live:

- its offer ref is one of ours, of this market, of the resource it names, of its market kind, and submitted (or
  already accepted);
- each interval is one of the offer's (on its grid, inside its window) and stands against it (award_rules: kW,
  minimum, the curve's price, the market's floor and cap, the net-benefits price where Order 745 applies);
- the same award id for the same offer again with the same content is the same award; with other content, 409.

Accepted, the offer becomes accepted and the award's event is created (source market_instruction, external_ref the
award id, so a market's later instruction can name it in `replaces_instruction_id`). The target kind is a
reduction: what the offer sold is flexibility measured against the resource's baseline (the forecast it came from
and the settlement that pays it both measure delivery that way), not a level the resource holds. Nothing is written
when anything is refused, the event included.

Overlaps. A day-ahead award's window may hold an operator's test event: the test yields (it is cancelled with the
award named), since the award is the obligation the resource is settled on. A utility's call in the window refuses
the award (409): the utility's override for local reliability comes first, and the operator tells the market. A
real-time award inside an already awarded window replaces that award's event with a new one: the rest of the
earlier schedule with the real-time intervals in its place (a new event rather than `modify`, so each award keeps
its own event as its origin and the earlier event's record stays as it was served).
"""

import logging
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from aggregator.aggregation.models import VirtualResource
from aggregator.core.errors import DomainError, Problem
from aggregator.core.state_machine import Actor
from aggregator.market import award_rules
from aggregator.market.adapters import FetchFailed, for_connection
from aggregator.market.models import (
    Award,
    AwardInterval,
    MarketConnection,
    MarketKind,
    Offer,
    OfferState,
    RefusedAward,
)
from aggregator.market.wire import AwardWire, offer_ref, parse_offer_ref
from aggregator.reference.models import Market, NetBenefitsPrice, Program
from dispatch import services as dispatch
from dispatch.models import OPEN_STATES, DispatchEvent
from settlement.models import SettlementTerms

log = logging.getLogger(__name__)

MAX_INTERVALS = 300  # a 25-hour operating day of 15-minute intervals is 100; of 5-minute ones, 300
AWARDABLE = (OfferState.SUBMITTED, OfferState.ACCEPTED)
MAX_RAMP_SECONDS = 3600


class AwardRefused(DomainError):
    status = 422


@dataclass(frozen=True)
class ParsedAward:
    award_ref: str
    offer_ref: str
    resource_ref: str
    market_kind: str
    intervals: tuple[award_rules.Awarded, ...]

    def key(self) -> tuple:
        """What makes a resend the same award."""
        return (self.offer_ref, self.resource_ref, self.market_kind, tuple(sorted(self.intervals, key=_start)))


def _start(a: award_rules.Awarded) -> datetime:
    return a.start


# --- parsing -----------------------------------------------------------------------------------------------


def _text(value, field: str, problems: list[Problem], *, max_length: int) -> str:
    if not isinstance(value, str) or not value.strip():
        problems.append(Problem("required", "A non-empty string.", field))
        return ""
    if len(value) > max_length:
        problems.append(Problem("max_length", f"At most {max_length} characters.", field))
    if "\x00" in value:
        problems.append(Problem("invalid", "A NUL character is not allowed.", field))
    return value.strip()


def _time(value, field: str, problems: list[Problem]) -> datetime | None:
    try:
        at = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        at = None
    if at is None:
        problems.append(Problem("invalid", "An ISO 8601 date and time with its UTC offset.", field))
        return None
    if at.tzinfo is None:
        problems.append(Problem("naive_timestamp", "Give the UTC offset (e.g. ...T17:00:00-07:00 or ...Z).", field))
        return None
    offset = at.utcoffset()
    if offset is not None and abs(offset) >= timedelta(hours=16):
        problems.append(Problem("invalid_offset", "The UTC offset must be within ±15:59.", field))
        return None
    return at.astimezone(UTC)


def _number(value, field: str, problems: list[Problem], *, places: Decimal, lowest: Decimal | None = None):
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        problems.append(Problem("invalid", "A number.", field))
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite() or abs(number) >= Decimal("1e8"):
        problems.append(Problem("invalid", "A finite number below 100,000,000.", field))
        return None
    if lowest is not None and number < lowest:
        problems.append(Problem("min_value", f"At least {lowest}.", field))
        return None
    return number.quantize(places)


def parse_award(award) -> ParsedAward:
    """The award's JSON form (aggregator.market.wire.AwardWire) read and checked for shape; AwardRefused (400)
    naming each field that is not right."""
    problems: list[Problem] = []
    if not isinstance(award, dict):
        raise AwardRefused(Problem("invalid", "An award is a JSON object.", None), status=400)
    award_ref = _text(award.get("award_id"), "award_id", problems, max_length=100)
    ref = _text(award.get("offer_id"), "offer_id", problems, max_length=100)
    resource_ref = _text(award.get("resource"), "resource", problems, max_length=64)
    kind = award.get("market_kind")
    if kind not in MarketKind.values:
        problems.append(Problem("invalid_choice", f"One of {', '.join(MarketKind.values)}.", "market_kind"))
    raw = award.get("intervals")
    intervals = []
    if not isinstance(raw, list) or not raw:
        problems.append(Problem("required", "At least one interval.", "intervals"))
    elif len(raw) > MAX_INTERVALS:
        problems.append(Problem("too_large", f"At most {MAX_INTERVALS} intervals.", "intervals"))
    else:
        for i, item in enumerate(raw):
            at = f"intervals[{i}]"
            if not isinstance(item, dict):
                problems.append(Problem("invalid", "An interval is a JSON object.", at))
                continue
            start = _time(item.get("start"), f"{at}.start", problems)
            end = _time(item.get("end"), f"{at}.end", problems)
            kw = _number(item.get("kw"), f"{at}.kw", problems, places=award_rules.KW, lowest=Decimal(0))
            price = _number(item.get("price_per_mwh"), f"{at}.price_per_mwh", problems, places=award_rules.PRICE)
            if start and end and not end > start:
                problems.append(Problem("out_of_range", "end must be after start.", f"{at}.end"))
            elif None not in (start, end, kw, price):
                intervals.append(award_rules.Awarded(start, end, kw, price))
    if problems:
        raise AwardRefused(problems, status=400)
    return ParsedAward(award_ref, ref, resource_ref, str(kind), tuple(intervals))


# --- receiving ---------------------------------------------------------------------------------------------


def _offer(market: Market, parsed: ParsedAward) -> Offer:
    """The offer the award answers, locked (so one award of it is received at a time), or AwardRefused."""
    ids = parse_offer_ref(parsed.offer_ref)
    offer = None
    if ids is not None:
        offer = (
            Offer.objects.select_for_update(of=("self",))
            .select_related("resource__market", "resource__program")
            .filter(pk=ids[0], version=ids[1])
            .first()
        )
    if offer is None or offer.resource.market_id != market.pk:
        raise AwardRefused(
            Problem("does_not_exist", f"{parsed.offer_ref!r} is not one of our offers in {market.code}.", "offer_id")
        )
    if offer.resource.market_resource_id != parsed.resource_ref:
        raise AwardRefused(
            Problem(
                "wrong_resource",
                f"Offer {parsed.offer_ref} is for resource {offer.resource.market_resource_id or '(unregistered)'}.",
                "resource",
            )
        )
    if offer.market_kind != parsed.market_kind:
        raise AwardRefused(
            Problem("wrong_market_kind", f"Offer {parsed.offer_ref} is a {offer.market_kind} offer.", "market_kind")
        )
    return offer


def _net_benefits_prices(market: Market, program: Program, intervals) -> dict[date, Decimal] | None:
    """Local month -> the month's net-benefits price, where Order 745's test applies to the program (demand
    response, unless its settlement terms say otherwise); None where it does not. A month without a published
    price is not checked (settlement flags it when it pays)."""
    if program.service != Program.Service.DEMAND_RESPONSE:
        return None
    terms = SettlementTerms.objects.filter(program=program).first()
    if terms is not None and not terms.net_benefits_test:
        return None
    zone = ZoneInfo(market.time_zone)
    months = {a.start.astimezone(zone).date().replace(day=1) for a in intervals}
    return dict(NetBenefitsPrice.objects.filter(market=market, month__in=months).values_list("month", "price_per_mwh"))


def _check(offer: Offer, parsed: ParsedAward) -> list[Problem]:
    market = offer.resource.market
    if offer.state not in AWARDABLE:
        return [
            Problem(
                "not_submitted",
                f"Offer {parsed.offer_ref} is {offer.state}: only a submitted offer can be awarded.",
                "offer_id",
            )
        ]
    offered = {
        row.start.astimezone(UTC): award_rules.Offered(
            Decimal(row.min_kw),
            Decimal(row.max_kw),
            tuple((Decimal(str(q)), Decimal(str(p))) for q, p in row.segments),
        )
        for row in offer.intervals.all()
    }
    thresholds = _net_benefits_prices(market, offer.resource.program, parsed.intervals)
    zone = ZoneInfo(market.time_zone)
    interval = timedelta(minutes=offer.interval_minutes)
    problems: list[Problem] = []
    seen = set()
    for i, awarded in enumerate(parsed.intervals):
        if awarded.start in seen:
            problems.append(Problem("duplicate", "Two intervals start at the same time.", f"intervals[{i}].start"))
            continue
        seen.add(awarded.start)
        if not offer.window_start <= awarded.start < offer.window_end:
            problems.append(
                Problem(
                    "outside_window",
                    f"The offer covers {offer.window_start.isoformat()} to {offer.window_end.isoformat()}.",
                    f"intervals[{i}].start",
                )
            )
            continue
        month = awarded.start.astimezone(zone).date().replace(day=1)
        problems += award_rules.interval_problems(
            index=i,
            awarded=awarded,
            offered=offered.get(awarded.start),
            interval=interval,
            floor=Decimal(market.offer_price_floor_per_mwh),
            cap=Decimal(market.offer_price_cap_per_mwh),
            net_benefits_price=None if thresholds is None else thresholds.get(month),
        )
    return problems


def receive_award(
    *, market: Market, award: AwardWire, source: str, by: Actor, now: datetime | None = None
) -> tuple[Award, bool]:
    """Check an award against its offer and, accepted, record it and create its dispatch event: (award, whether it
    is new). AwardRefused (400 for its shape, 422 for its rules) or DomainError (409) naming the field, and nothing
    written, when it cannot stand."""
    now = now or timezone.now()
    parsed = parse_award(award)
    with transaction.atomic():
        offer = _offer(market, parsed)
        existing = Award.objects.filter(offer=offer, award_ref=parsed.award_ref).first()
        if existing is not None:
            if parse_award(existing.content).key() != parsed.key():
                raise DomainError(
                    Problem(
                        "award_id_reused",
                        f"Award {parsed.award_ref} of offer {parsed.offer_ref} was received with other content.",
                        "award_id",
                    )
                )
            return existing, False
        problems = _check(offer, parsed)
        if problems:
            raise AwardRefused(problems)
        row = Award.objects.create(
            offer=offer,
            award_ref=parsed.award_ref,
            market_kind=parsed.market_kind,
            source=source,
            received_at=now,
            content=award,
        )
        AwardInterval.objects.bulk_create(
            AwardInterval(award=row, start=a.start, end=a.end, kw=a.kw, price_per_mwh=a.price_per_mwh)
            for a in sorted(parsed.intervals, key=_start)
        )
        if offer.state != OfferState.ACCEPTED:
            Offer.objects.filter(pk=offer.pk).update(state=OfferState.ACCEPTED)
        row.event = _dispatch(offer=offer, award=row, parsed=parsed, by=by, now=now)
        if row.event is not None:
            row.save(update_fields=["event"])
    return row, True


def _award_origin(event: DispatchEvent) -> Award | None:
    return Award.objects.filter(event=event).first()


def _dispatch(*, offer: Offer, award: Award, parsed: ParsedAward, by: Actor, now: datetime) -> DispatchEvent | None:
    """The award's event (None: it awards nothing to deliver)."""
    real_time = parsed.market_kind == MarketKind.REAL_TIME
    step = timedelta(minutes=offer.interval_minutes)
    pieces = award_rules.schedule(list(parsed.intervals), keep_zeros=real_time, step=step)
    if not any(p.kw > 0 for p in pieces) and not real_time:
        return None
    resource = offer.resource
    # The resource first, as create_event locks it: no other event can take the window meanwhile.
    VirtualResource.objects.select_for_update().filter(pk=resource.pk).first()
    replaces = None
    for event in DispatchEvent.objects.filter(
        resource=resource, state__in=OPEN_STATES, start__lt=pieces[-1].end, end__gt=pieces[0].start
    ).order_by("start"):
        origin = _award_origin(event)
        if event.source == DispatchEvent.Source.OPERATOR_TEST:
            dispatch.cancel(event=event, by=by, reason=f"Yields to market award {parsed.award_ref}.", now=now)
        elif real_time and origin is not None and replaces is None:
            replaces = event
        else:
            raise DomainError(
                Problem(
                    "overlapping_event",
                    f"Event {event.pk} ({event.source}"
                    + (f", award {origin.award_ref}" if origin else "")
                    + f") already asks this resource for {event.start.isoformat()} to {event.end.isoformat()}.",
                    "intervals",
                )
            )
    if replaces is not None:
        base = [award_rules.Piece(i.start, i.end, i.target_kw) for i in replaces.intervals.order_by("start")]
        pieces = award_rules.overlay(base, pieces, not_before=max(now, replaces.start), step=step)
        if not pieces:  # the real-time award stops everything that was left
            dispatch.cancel(event=replaces, by=by, reason=f"Stopped by market award {parsed.award_ref}.", now=now)
            return None
    elif not any(p.kw > 0 for p in pieces):
        return None
    else:
        pieces = award_rules.overlay([], pieces, not_before=pieces[0].start, step=step)  # no 0 kW at the edges
    return dispatch.create_event(
        resource=resource,
        source=DispatchEvent.Source.MARKET_INSTRUCTION,
        start=pieces[0].start,
        end=pieces[-1].end,
        by=by,
        intervals=[dispatch.IntervalSpec(p.start, p.end, p.kw) for p in pieces],
        target_kind=DispatchEvent.TargetKind.REDUCTION,
        ramp_seconds=_ramp_seconds(offer, pieces[0]),
        external_ref=parsed.award_ref,
        replaces=replaces,
        now=now,
    )


def _ramp_seconds(offer: Offer, first: award_rules.Piece) -> int:
    """How long the offer said the resource takes to reach the first interval's kW (its ramp rate)."""
    row = offer.intervals.filter(start__lte=first.start).order_by("-start").first()
    if row is None or row.ramp_kw_per_minute <= 0:
        return 0
    return min(MAX_RAMP_SECONDS, math.ceil(float(first.kw) / float(row.ramp_kw_per_minute) * 60))


# --- the adapter's poll ------------------------------------------------------------------------------------


def pollable_connections() -> QuerySet[MarketConnection]:
    """Connections whose adapter brings awards back."""
    return MarketConnection.objects.filter(
        enabled=True, adapter__in=[MarketConnection.Adapter.HTTP, MarketConnection.Adapter.FILE]
    )


def _record_refusal(market: Market, award, problems: list[Problem], now: datetime) -> None:
    content = award if isinstance(award, dict) else {"received": repr(award)[:2000]}
    keys = {
        "market": market,
        "award_ref": str(content.get("award_id") or "")[:100],
        "offer_ref": str(content.get("offer_id") or "")[:100],
    }
    seen = RefusedAward.objects.filter(**keys)
    if seen.update(
        times_seen=F("times_seen") + 1, last_seen_at=now, content=content, problems=[p.as_dict() for p in problems]
    ):
        return
    RefusedAward.objects.create(
        **keys,
        resource_ref=str(content.get("resource") or "")[:64],
        first_seen_at=now,
        last_seen_at=now,
        content=content,
        problems=[p.as_dict() for p in problems],
    )


@dataclass
class PollResult:
    fetched: int = 0
    new: int = 0
    refused: int = 0
    error: str = ""


def poll_awards(*, connection: MarketConnection, now: datetime | None = None) -> PollResult:
    """Take in what the market's adapter has published since the last poll.

    One transaction, the connection locked: the adapter moves its cursor in it, so a poll that fails part-way
    (a lost worker, the database gone) leaves the cursor where it was and the next poll fetches the same awards
    again (receiving is idempotent). An award the checks refuse is logged and kept as a RefusedAward, and the
    cursor moves past it: it is not retried by itself.
    """
    now = now or timezone.now()
    result = PollResult()
    with transaction.atomic():
        connection = MarketConnection.objects.select_for_update().select_related("market").get(pk=connection.pk)
        adapter = for_connection(connection)
        if adapter is None:
            return result
        try:
            fetched = adapter.fetch_awards()
        except FetchFailed as exc:
            log.warning("Awards from %s could not be fetched: %s", connection.market.code, exc)
            result.error = str(exc)
            return result
        result.fetched = len(fetched)
        by = f"{connection.market.code} market adapter ({connection.adapter})"
        for wire in fetched:
            try:
                _, created = receive_award(
                    market=connection.market, award=wire, source=Award.Source.ADAPTER, by=by, now=now
                )
            except DomainError as exc:
                ref = wire.get("award_id") if isinstance(wire, dict) else None
                log.warning("Award %r from %s refused: %s", ref, connection.market.code, exc)
                _record_refusal(connection.market, wire, exc.problems, now)
                result.refused += 1
                continue
            result.new += int(created)
    return result


# --- selectors ---------------------------------------------------------------------------------------------


def awards() -> QuerySet[Award]:
    """Every award with what the operator API shows of it: its intervals, its offer and its event."""
    return Award.objects.select_related("offer__resource__market", "event").prefetch_related("intervals")


def refused_awards() -> QuerySet[RefusedAward]:
    return RefusedAward.objects.select_related("market")


def ref_of(award: Award) -> str:
    return offer_ref(award.offer_id, award.offer.version)

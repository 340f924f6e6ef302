"""Offers: build draft versions from forecasts and what a kW costs the customers, edit (a new version), approve,
submit through the market's adapter, expire; and the beat cycle that does it before each market's deadlines.

Lifecycle (TRANSITIONS): draft -approve-> approved -submit-> submitted (-> accepted / rejected, by the award
side); draft or approved -edit-> superseded by a new draft; submitted -edit-> a new version, approved and
submitted at once as a resubmission, which supersedes the old one when the market takes it; draft or approved
-expire-> expired once the deadline passes. Every edit is a new version of the same (resource, market kind,
window); a submitted version never changes (aggregator/market/migrations/0002: database triggers), and the
services only ever change its state.

Building (`build_offers`): per resource, its latest forecast of the window's kind (real-time offers fall back to
an hourly forecast when no fresh real-time one covers the hour) must cover the window and be recent
(MARKET_OFFER_FORECAST_MAX_AGE_MINUTES), else the resource is skipped with a reason. The interval limit is the
program's offer quantile (P10 by default), the lowest value over the forecast steps the interval spans. A window
that already has a version is left alone, except a draft the platform built from an older forecast, which a new
version from the newer forecast supersedes. A build takes a transaction-level advisory lock per market, kind and
window, so a beat run and an operator's build never race. Cost inputs of all resources load at once
(selectors.cost_inputs); offers and intervals are written with two bulk inserts.

Operating limits per interval: min_kw 0 (an aggregation dispatches from zero; which members run is the
allocation's business); max_kw the curve's total; ramp the full output over MARKET_OFFER_RAMP_MINUTES;
notification the longest member notice; minimum run the longest member minimum; maximum run the program's typical
event length, shortened to the longest any member can run when every member has a limit.
"""

import hashlib
import json
import math
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from aggregator.aggregation.models import VirtualResource
from aggregator.core.errors import DomainError, Problem
from aggregator.core.state_machine import Actor, Transition, check, table
from aggregator.core.state_machine import actor as actor_of
from aggregator.market import adapters
from aggregator.market.models import Forecast, MarketConnection, MarketKind, Offer, OfferInterval, OfferState
from aggregator.market.offers import curve, deadlines, selectors
from aggregator.market.wire import OfferIntervalWire, OfferWire, offer_ref
from aggregator.reference.models import Market, Program

AUTO_LABEL = "offer builder"
S = OfferState

TRANSITIONS = table(
    Transition("approve", frozenset({S.DRAFT}), S.APPROVED),
    Transition("submit", frozenset({S.APPROVED}), S.SUBMITTED),
    Transition("edit", frozenset({S.DRAFT, S.APPROVED, S.SUBMITTED}), S.SUPERSEDED),
    Transition("expire", frozenset({S.DRAFT, S.APPROVED}), S.EXPIRED, system_only=True),
)


class OfferRefused(DomainError):
    status = 409


@dataclass(frozen=True)
class Window:
    market_kind: str
    start: datetime
    end: datetime
    interval_minutes: int
    deadline: datetime

    @property
    def starts(self) -> list[datetime]:
        return deadlines.interval_starts(self.start, self.end, self.interval_minutes)


@dataclass
class BuildResult:
    built: list[Offer] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def _holidays_around(market: Market, day: date) -> set[date]:
    return selectors.market_holidays(market, first=day - timedelta(days=10), last=day + timedelta(days=10))


def window_for(
    market: Market,
    market_kind: str,
    *,
    day: date | None = None,
    hour_start: datetime | None = None,
    rules: list[deadlines.DeadlineRule] | None = None,
) -> Window:
    """The window and deadline of a market's day-ahead offer for operating `day`, or real-time offer for the
    operating hour from `hour_start`."""
    rules = selectors.deadline_rules(market) if rules is None else rules
    try:
        if market_kind == MarketKind.DAY_AHEAD:
            if day is None:
                raise ValueError("a day-ahead window needs its operating day")
            start, end = deadlines.day_ahead_window(day, market_time_zone=market.time_zone)
            deadline = deadlines.day_ahead_deadline(
                day, rules, market_time_zone=market.time_zone, holidays=_holidays_around(market, day)
            )
            return Window(market_kind, start, end, 60, deadline)
        if hour_start is None:
            raise ValueError("a real-time window needs its operating hour")
        start, end = deadlines.real_time_window(deadlines.hour_floor(hour_start))
        deadline = deadlines.real_time_deadline(
            start,
            rules,
            market_time_zone=market.time_zone,
            holidays=_holidays_around(market, start.date()),
        )
        return Window(market_kind, start, end, int(market.real_time_interval_minutes), deadline)
    except deadlines.NoDeadline:
        raise OfferRefused(
            Problem("no_deadline", f"{market.code} has no {market_kind} offer deadline.", "market_kind"), status=422
        ) from None


def price_rules(market: Market, *, nbt: float | None) -> curve.PriceRules:
    return curve.PriceRules(
        floor=float(market.offer_price_floor_per_mwh),
        cap=float(market.offer_price_cap_per_mwh),
        max_segments=int(market.max_offer_segments),
        nbt=nbt,
    )


def quantile_limits(forecast: Forecast, quantile: str, starts: list[datetime], interval_minutes: int) -> list[float]:
    """The forecast quantile each offer interval may not exceed: the lowest value over the forecast steps the
    interval spans (NaN where the forecast does not reach)."""
    values = getattr(forecast, f"{quantile}_kw")
    step = forecast.interval_minutes * 60
    limits = []
    for start in starts:
        first = (start - forecast.start).total_seconds() / step
        last = (start + timedelta(minutes=interval_minutes) - forecast.start).total_seconds() / step
        i0, i1 = math.floor(first), math.ceil(last)
        if i0 < 0 or i1 > len(values) or i1 <= i0:
            limits.append(math.nan)
        else:
            limits.append(float(min(values[i0:i1])))
    return limits


def _covers(forecast: Forecast, window: Window) -> bool:
    end = forecast.start + timedelta(minutes=forecast.interval_minutes * len(forecast.p10_kw))
    return forecast.start <= window.start and end >= window.end


def _fresh(forecast: Forecast, now: datetime) -> bool:
    max_age = settings.MARKET_OFFER_FORECAST_MAX_AGE_MINUTES[forecast.kind]
    return now - forecast.issued_at <= timedelta(minutes=max_age)


def _lock_window(market: Market, window: Window) -> None:
    key = f"offers:{market.pk}:{window.market_kind}:{window.start.isoformat()}"
    digest = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big", signed=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [digest])


def _warning(code: str, message: str, at: datetime) -> dict:
    return {"code": code, "message": message, "at": at.isoformat()}


def _with_warning(warnings: list, entry: dict) -> list:
    """A warning replaces an earlier one of its code (a retried submission keeps one, the latest)."""
    return [w for w in warnings if w.get("code") != entry["code"]] + [entry]


def build_offers(
    *,
    market_kind: str,
    resources: Iterable[VirtualResource],
    day: date | None = None,
    window_start: datetime | None = None,
    now: datetime | None = None,
    by: Actor = AUTO_LABEL,
) -> BuildResult:
    """Draft versions for each resource's window (day-ahead: operating `day`; real-time: the hour from
    `window_start`), or a reason per resource skipped."""
    now = now or timezone.now()
    result = BuildResult()
    by_market: dict[int, list[VirtualResource]] = defaultdict(list)
    markets: dict[int, Market] = {}
    for resource in resources:
        by_market[resource.market_id].append(resource)
        markets[resource.market_id] = resource.market
    _, label = actor_of(by)
    for market_id, group in by_market.items():
        market = markets[market_id]
        operating_day = day
        if market_kind == MarketKind.DAY_AHEAD and day is None and window_start is not None:
            operating_day = deadlines.operating_day_of(window_start, market_time_zone=market.time_zone)
        window = window_for(market, market_kind, day=operating_day, hour_start=window_start)
        if now >= window.deadline:
            result.skipped += [
                {"resource": r.pk, "code": "deadline_passed", "message": f"The deadline {window.deadline} has passed."}
                for r in group
            ]
            continue
        with transaction.atomic():
            _lock_window(market, window)
            _build_window(market, window, group, now=now, label=label, result=result)
    return result


_COPY_INTERVALS = (
    "COPY market_offerinterval (offer_id, start, min_kw, max_kw, segments, ramp_kw_per_minute, notification_minutes,"
    " min_run_minutes, max_run_minutes) FROM STDIN"
)


def _build_window(
    market: Market, window: Window, group: list[VirtualResource], *, now: datetime, label: str, result: BuildResult
) -> None:
    started = time.perf_counter()
    ids = [r.pk for r in group]
    kinds = ["hourly"] if window.market_kind == MarketKind.DAY_AHEAD else ["real_time", "hourly"]
    candidates = [selectors.latest_forecasts(resource_ids=ids, kind=kind, as_of=now) for kind in kinds]
    existing = selectors.latest_versions(resource_ids=ids, market_kind=window.market_kind, window_start=window.start)
    terms = selectors.settlement_terms({r.program_id for r in group})
    nbt = selectors.net_benefits_price(market, at=window.start)
    chosen: dict[int, Forecast] = {}
    for resource in group:
        found = [by_kind[resource.pk] for by_kind in candidates if resource.pk in by_kind]
        usable = [f for f in found if _covers(f, window) and _fresh(f, now)]
        if not usable:
            code, message = (
                ("no_forecast", "No forecast of the resource covers the window.")
                if not any(_covers(f, window) for f in found)
                else ("stale_forecast", "The resource's latest forecast is too old to offer from.")
            )
            result.skipped.append({"resource": resource.pk, "code": code, "message": message})
            continue
        forecast = usable[0]
        previous = existing.get(resource.pk)
        if previous is not None and not (
            previous.state == S.DRAFT and previous.built_by_label == AUTO_LABEL and previous.forecast_id != forecast.pk
        ):
            result.skipped.append(
                {"resource": resource.pk, "code": "exists", "message": f"Version {previous.version} exists."}
            )
            continue
        chosen[resource.pk] = forecast
    result.seconds["forecasts"] = result.seconds.get("forecasts", 0.0) + time.perf_counter() - started
    if not chosen:
        return
    started = time.perf_counter()
    inputs = selectors.cost_inputs(
        resource_ids=list(chosen),
        start=window.start,
        end=window.end,
        interval_minutes=window.interval_minutes,
        as_of=now,
    )
    result.seconds["cost_inputs"] = result.seconds.get("cost_inputs", 0.0) + time.perf_counter() - started
    started = time.perf_counter()
    starts = window.starts
    offers: list[Offer] = []
    rows: list[list[tuple]] = []
    superseded: list[int] = []
    ramp_minutes = float(settings.MARKET_OFFER_RAMP_MINUTES)
    for resource in group:
        forecast = chosen.get(resource.pk)
        if forecast is None:
            continue
        program: Program = resource.program
        program_terms = terms.get(program.pk)
        demand_response = selectors.is_demand_response(program, program_terms)
        warnings = []
        if demand_response and nbt is None:
            warnings.append(
                _warning(
                    "no_net_benefits_price",
                    f"No net-benefits price of {market.code} for the month is loaded: segments were not raised to it.",
                    now,
                )
            )
        rules = price_rules(market, nbt=nbt if demand_response else None)
        data = inputs[resource.pk]
        limits = np.nan_to_num(
            np.array(quantile_limits(forecast, program.offer_quantile, starts, window.interval_minutes)), nan=0.0
        )
        costs = curve.device_costs(
            kw=data.kw,
            stored_value_per_kwh=data.stored_value_per_kwh,
            round_trip_efficiency=data.round_trip_efficiency,
            opt_out_rate=data.opt_out_rate,
            payout=selectors.payout_of(program_terms, program),
        )
        curves = curve.build_curves(data.kw, costs, limit_kw=limits, rules=[rules] * len(starts))
        max_run = int(float(program.typical_event_hours) * 60)
        if data.max_event_minutes is not None:
            max_run = min(max_run, data.max_event_minutes)
        previous = existing.get(resource.pk)
        if previous is not None:
            superseded.append(previous.pk)
        offers.append(
            Offer(
                resource=resource,
                market_kind=window.market_kind,
                window_start=window.start,
                window_end=window.end,
                interval_minutes=window.interval_minutes,
                version=previous.version + 1 if previous else 1,
                state=S.DRAFT,
                forecast=forecast,
                quantile=program.offer_quantile,
                deadline=window.deadline,
                supersedes=previous,
                built_at=now,
                built_by_label=label,
                warnings=warnings,
            )
        )
        max_kw = [curve.curve_kw(segments) for segments in curves]
        ramp = [round(total / ramp_minutes, 3) for total in max_kw]
        min_run = min(data.min_run_minutes, max_run)
        intervals = [
            (start, 0, total, json.dumps(segments), r, data.notification_minutes, min_run, max_run)
            for start, segments, total, r in zip(starts, curves, max_kw, ramp, strict=True)
        ]
        rows.append(intervals)
    result.seconds["curves"] = result.seconds.get("curves", 0.0) + time.perf_counter() - started
    started = time.perf_counter()
    if superseded:
        Offer.objects.filter(pk__in=superseded, state=S.DRAFT).update(state=S.SUPERSEDED)
    Offer.objects.bulk_create(offers)
    # COPY, not bulk_create: 24,000 intervals a day-ahead run at a tenth of the ORM's cost (the immutability
    # trigger still sees every row, as a statement's transition table).
    with connection.cursor() as cursor, cursor.copy(_COPY_INTERVALS) as copy:
        for offer, intervals in zip(offers, rows, strict=True):
            for row in intervals:
                copy.write_row((offer.pk, *row))
    result.built += offers
    result.seconds["store"] = result.seconds.get("store", 0.0) + time.perf_counter() - started


def _locked_latest(offer: Offer) -> Offer:
    """The latest version of the offer's window, locked; refuses when `offer` is not it."""
    latest = (
        Offer.objects.select_for_update()
        .filter(resource_id=offer.resource_id, market_kind=offer.market_kind, window_start=offer.window_start)
        .order_by("-version")
        .first()
    )
    if latest is None or latest.pk != offer.pk:
        raise OfferRefused(
            Problem(
                "not_latest_version",
                f"Version {offer.version} is not the latest of its window (v{latest.version if latest else '?'}): "
                "edit the latest.",
                "version",
            )
        )
    return latest


def _before_deadline(offer: Offer, now: datetime) -> None:
    if now >= offer.deadline:
        raise OfferRefused(
            Problem(
                "deadline_passed", f"The market stopped taking this offer at {offer.deadline.isoformat()}.", "deadline"
            )
        )


EDITABLE = ("segments", "min_kw", "ramp_kw_per_minute", "notification_minutes", "min_run_minutes", "max_run_minutes")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal, str)):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _parse_start(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo is not None else None


def edit_offer(
    *, offer: Offer, intervals: list[dict], by: Actor, notes: str | None = None, now: datetime | None = None
) -> Offer:
    """A new version of the offer with `intervals` changed (each {start, and any of EDITABLE}); unnamed intervals
    are carried over. Validated against the market's rules and the forecast quantile; nothing is written when any
    field is refused (400 naming it). A submitted offer's new version is submitted at once (a resubmission)."""
    now = now or timezone.now()
    with transaction.atomic():
        latest = _locked_latest(offer)
        check(TRANSITIONS, action="edit", state=latest.state, reason="", noun="an offer")
        _before_deadline(latest, now)
        market: Market = latest.resource.market
        old = {i.start: i for i in latest.intervals.all()}
        starts = sorted(old)
        limits = dict(
            zip(
                starts,
                quantile_limits(latest.forecast, latest.quantile, starts, latest.interval_minutes),
                strict=True,
            )
        )
        terms = selectors.settlement_terms({latest.resource.program_id}).get(latest.resource.program_id)
        demand_response = selectors.is_demand_response(latest.resource.program, terms)
        nbt = selectors.net_benefits_price(market, at=latest.window_start) if demand_response else None
        rules = price_rules(market, nbt=nbt)
        problems: list[Problem] = []
        changed: dict[datetime, dict] = {}
        if not isinstance(intervals, list) or not intervals:
            problems.append(Problem("required", "At least one interval to change.", "intervals"))
            intervals = []
        for i, change in enumerate(intervals):
            where = f"intervals[{i}]"
            if not isinstance(change, dict):
                problems.append(Problem("invalid", "An object with the interval's start.", where))
                continue
            start = _parse_start(change.get("start"))
            if start is None or start not in old:
                problems.append(
                    Problem("unknown_interval", "Not the start of one of the offer's intervals.", f"{where}.start")
                )
                continue
            if start in changed:
                problems.append(Problem("duplicate", "This interval is changed twice.", f"{where}.start"))
                continue
            unknown = set(change) - set(EDITABLE) - {"start"}
            for name in sorted(unknown):
                problems.append(Problem("not_editable", f"{name} cannot be edited.", f"{where}.{name}"))
            base = old[start]
            values = {
                "segments": change.get("segments", base.segments),
                "min_kw": change.get("min_kw", base.min_kw),
                "ramp_kw_per_minute": change.get("ramp_kw_per_minute", base.ramp_kw_per_minute),
                "notification_minutes": change.get("notification_minutes", base.notification_minutes),
                "min_run_minutes": change.get("min_run_minutes", base.min_run_minutes),
                "max_run_minutes": change.get("max_run_minutes", base.max_run_minutes),
            }
            problems += _interval_problems(values, where=where, limit=limits[start], rules=rules)
            changed[start] = values
        if problems:
            raise DomainError(problems, status=400)
        user, label = actor_of(by)
        resubmission = latest.state == S.SUBMITTED
        new = Offer.objects.create(
            resource=latest.resource,
            market_kind=latest.market_kind,
            window_start=latest.window_start,
            window_end=latest.window_end,
            interval_minutes=latest.interval_minutes,
            version=latest.version + 1,
            state=S.APPROVED if resubmission else S.DRAFT,
            approved_at=now if resubmission else None,
            approved_by=user if resubmission else None,
            forecast=latest.forecast,
            quantile=latest.quantile,
            deadline=latest.deadline,
            supersedes=latest,
            built_at=now,
            built_by_label=label,
            notes=latest.notes if notes is None else notes,
        )
        rows = []
        for start in starts:
            base = old[start]
            values = changed.get(start)
            if values is None:
                rows.append(
                    OfferInterval(
                        offer=new,
                        start=start,
                        min_kw=base.min_kw,
                        max_kw=base.max_kw,
                        segments=base.segments,
                        ramp_kw_per_minute=base.ramp_kw_per_minute,
                        notification_minutes=base.notification_minutes,
                        min_run_minutes=base.min_run_minutes,
                        max_run_minutes=base.max_run_minutes,
                    )
                )
                continue
            segments = [[float(kw), float(price)] for kw, price in values["segments"]]
            rows.append(
                OfferInterval(
                    offer=new,
                    start=start,
                    min_kw=Decimal(str(values["min_kw"])),
                    max_kw=Decimal(str(curve.curve_kw(segments))),
                    segments=segments,
                    ramp_kw_per_minute=Decimal(str(values["ramp_kw_per_minute"])),
                    notification_minutes=int(values["notification_minutes"]),
                    min_run_minutes=int(values["min_run_minutes"]),
                    max_run_minutes=None if values["max_run_minutes"] is None else int(values["max_run_minutes"]),
                )
            )
        OfferInterval.objects.bulk_create(rows)
        if not resubmission:
            Offer.objects.filter(pk=latest.pk).update(state=S.SUPERSEDED)
    if resubmission:
        return submit_offer(offer=new, by=by, now=now)
    return new


def _interval_problems(values: dict, *, where: str, limit: float, rules: curve.PriceRules) -> list[Problem]:
    problems = []
    min_kw = _number(values["min_kw"])
    if min_kw is None:
        problems.append(Problem("invalid", "A number of kW.", f"{where}.min_kw"))
        min_kw = 0.0
    problems += curve.validate_curve(
        values["segments"],
        limit_kw=0.0 if math.isnan(limit) else limit,
        rules=rules,
        min_kw=min_kw,
        field=f"{where}.segments",
        min_kw_field=f"{where}.min_kw",
    )
    ramp = _number(values["ramp_kw_per_minute"])
    if ramp is None or ramp < 0:
        problems.append(Problem("invalid", "A number of kW per minute, 0 or more.", f"{where}.ramp_kw_per_minute"))
    for name in ("notification_minutes", "min_run_minutes"):
        value = values[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            problems.append(Problem("invalid", "A whole number of minutes, 0 or more.", f"{where}.{name}"))
    max_run = values["max_run_minutes"]
    if max_run is not None:
        if isinstance(max_run, bool) or not isinstance(max_run, int) or max_run <= 0:
            problems.append(
                Problem("invalid", "A whole number of minutes above 0, or null.", f"{where}.max_run_minutes")
            )
        elif isinstance(values["min_run_minutes"], int) and values["min_run_minutes"] > max_run:
            problems.append(
                Problem(
                    "min_run_above_max_run", "The minimum run is longer than the maximum.", f"{where}.min_run_minutes"
                )
            )
    return problems


def approve_offer(*, offer: Offer, by: Actor, now: datetime | None = None) -> Offer:
    now = now or timezone.now()
    with transaction.atomic():
        latest = _locked_latest(offer)
        check(TRANSITIONS, action="approve", state=latest.state, reason="", noun="an offer")
        _before_deadline(latest, now)
        user, _ = actor_of(by)
        Offer.objects.filter(pk=latest.pk).update(state=S.APPROVED, approved_at=now, approved_by=user)
        latest.refresh_from_db()
        return latest


def offer_wire(offer: Offer) -> OfferWire:
    resource = offer.resource
    intervals: list[OfferIntervalWire] = [
        {
            "start": i.start.isoformat(),
            "min_kw": float(i.min_kw),
            "max_kw": float(i.max_kw),
            "ramp_kw_per_minute": float(i.ramp_kw_per_minute),
            "notification_minutes": i.notification_minutes,
            "min_run_minutes": i.min_run_minutes,
            "max_run_minutes": i.max_run_minutes,
            "segments": [[float(kw), float(price)] for kw, price in i.segments],
        }
        for i in offer.intervals.order_by("start")
    ]
    return {
        "offer_id": offer_ref(offer.pk, offer.version),
        "market": resource.market.code,
        "resource": resource.market_resource_id or f"VR-{resource.pk}",
        "market_kind": offer.market_kind,
        "window_start": offer.window_start.isoformat(),
        "window_end": offer.window_end.isoformat(),
        "interval_minutes": offer.interval_minutes,
        "deadline": offer.deadline.isoformat(),
        "intervals": intervals,
    }


def submit_offer(*, offer: Offer, by: Actor, now: datetime | None = None) -> Offer:
    """Send an approved offer through its market's adapter. Without a connection (or with the adapter `none`) it
    stays approved with a warning; when the adapter fails it stays approved with the failure recorded, and beat
    retries it until the deadline. The offer ref is the idempotency key: a retry after a lost reply is the same
    offer to the market."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = Offer.objects.select_for_update().select_related("resource__market").get(pk=offer.pk)
        check(TRANSITIONS, action="submit", state=locked.state, reason="", noun="an offer")
        _before_deadline(locked, now)
        market = locked.resource.market
        link = MarketConnection.objects.filter(market=market).first()
        adapter = adapters.for_connection(link) if link is not None else None
        if adapter is None:
            warning = _warning(
                "no_connection", f"{market.code} has no enabled market connection: the offer stays approved.", now
            )
            Offer.objects.filter(pk=locked.pk).update(warnings=_with_warning(locked.warnings, warning))
            locked.refresh_from_db()
            return locked
        try:
            receipt = adapter.submit(offer_wire(locked))
        except adapters.SubmissionFailed as exc:
            warning = _warning("submission_failed", f"{adapter.name}: {exc}", now)
            Offer.objects.filter(pk=locked.pk).update(warnings=_with_warning(locked.warnings, warning))
            locked.refresh_from_db()
            return locked
        Offer.objects.filter(pk=locked.pk).update(
            state=S.SUBMITTED,
            submitted_at=now,
            submitted_via=adapter.name,
            submission_ref=str(receipt)[:100],
            warnings=[w for w in locked.warnings if w.get("code") not in ("no_connection", "submission_failed")],
        )
        # A resubmission replaces what the market had: earlier submitted versions of the window are superseded.
        Offer.objects.filter(
            resource_id=locked.resource_id,
            market_kind=locked.market_kind,
            window_start=locked.window_start,
            version__lt=locked.version,
            state=S.SUBMITTED,
        ).update(state=S.SUPERSEDED)
        locked.refresh_from_db()
        return locked


def expire_offers(*, now: datetime | None = None) -> int:
    """Drafts and approved offers whose deadline has passed are expired (one UPDATE)."""
    now = now or timezone.now()
    return Offer.objects.filter(state__in=[S.DRAFT, S.APPROVED], deadline__lte=now).update(state=S.EXPIRED)


def _due_submissions(market: Market, *, market_kind: str, now: datetime, minutes: int) -> list[Offer]:
    """Offers of the market to submit now: approved ones, and drafts of auto-submit programs, whose deadline is
    within `minutes` (latest versions only; older drafts were superseded)."""
    return list(
        Offer.objects.filter(
            Q(state=S.APPROVED) | Q(state=S.DRAFT, resource__program__auto_submit_offers=True),
            resource__market=market,
            market_kind=market_kind,
            deadline__gt=now,
            deadline__lte=now + timedelta(minutes=minutes),
        ).order_by("deadline", "id")
    )


def run_offer_cycle(*, now: datetime | None = None) -> dict:
    """Beat's minute: per market, build the day-ahead offers whose deadline is within MARKET_OFFER_BUILD_HOURS_BEFORE
    and the real-time ones within MARKET_OFFER_RT_BUILD_MINUTES_BEFORE; submit approved offers (and auto-submit
    programs' drafts, approving them) within MARKET_OFFER_SUBMIT_MINUTES_BEFORE (real-time:
    MARKET_OFFER_RT_SUBMIT_MINUTES_BEFORE) of their deadline; expire what is past its deadline unsubmitted."""
    now = now or timezone.now()
    summary: dict[str, Any] = {"built": 0, "skipped": 0, "submitted": 0, "not_submitted": 0, "expired": 0}
    for market in Market.objects.all():
        rules = selectors.deadline_rules(market)
        if not rules:
            continue
        resources = list(selectors.offering_resources(market))
        if resources:
            for kind, window in _windows_to_build(market, rules, now=now):
                built = build_offers(
                    market_kind=kind,
                    resources=resources,
                    day=deadlines.operating_day_of(window, market_time_zone=market.time_zone)
                    if kind == MarketKind.DAY_AHEAD
                    else None,
                    window_start=window if kind == MarketKind.REAL_TIME else None,
                    now=now,
                )
                summary["built"] += len(built.built)
                summary["skipped"] += sum(1 for s in built.skipped if s["code"] != "exists")
        for kind, minutes in (
            (MarketKind.DAY_AHEAD, settings.MARKET_OFFER_SUBMIT_MINUTES_BEFORE),
            (MarketKind.REAL_TIME, settings.MARKET_OFFER_RT_SUBMIT_MINUTES_BEFORE),
        ):
            for offer in _due_submissions(market, market_kind=kind, now=now, minutes=minutes):
                if offer.state == S.DRAFT:
                    offer = approve_offer(offer=offer, by="auto-submit", now=now)
                submitted = submit_offer(offer=offer, by="auto-submit", now=now)
                summary["submitted" if submitted.state == S.SUBMITTED else "not_submitted"] += 1
    summary["expired"] = expire_offers(now=now)
    return summary


def _windows_to_build(market: Market, rules, *, now: datetime) -> list[tuple[str, datetime]]:
    """(kind, window start) of the windows whose deadline is ahead, within the build lead."""
    found: list[tuple[str, datetime]] = []
    today = deadlines.operating_day_of(now, market_time_zone=market.time_zone)
    lead = timedelta(hours=settings.MARKET_OFFER_BUILD_HOURS_BEFORE)
    days_before = max((r.days_before for r in rules if r.market_kind == MarketKind.DAY_AHEAD), default=None)
    if days_before is not None:
        for offset in range(days_before + int(lead.total_seconds() // 86400) + 2):
            day = today + timedelta(days=offset)
            try:
                window = window_for(market, MarketKind.DAY_AHEAD, day=day, rules=rules)
            except OfferRefused:
                continue
            if now < window.deadline <= now + lead:
                found.append((MarketKind.DAY_AHEAD, window.start))
    minutes = max((r.minutes_before or 0 for r in rules if r.market_kind == MarketKind.REAL_TIME), default=None)
    if minutes is not None:
        rt_lead = timedelta(minutes=settings.MARKET_OFFER_RT_BUILD_MINUTES_BEFORE)
        hour = deadlines.hour_floor(now)
        last = now + rt_lead + timedelta(minutes=minutes) + timedelta(hours=1)
        while hour <= last:
            try:
                window = window_for(market, MarketKind.REAL_TIME, hour_start=hour, rules=rules)
            except OfferRefused:
                window = None
            if window is not None and now < window.deadline <= now + rt_lead:
                found.append((MarketKind.REAL_TIME, window.start))
            hour += timedelta(hours=1)
    return found

import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from django.core.management.base import BaseCommand, CommandError

from aggregator.core.csv_files import write_csv
from aggregator.reference.holidays import MARKET_CALENDARS, MARKET_TIME_ZONES
from settlement.baselines import METHODS, compute_baseline, get_method
from settlement.baselines.csv_input import parse_event_days, parse_readings
from settlement.baselines.errors import BaselineError


def _param(text: str) -> tuple[str, object]:
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise CommandError(f"--param {text!r}: write key=value.")
    try:
        value = json.loads(raw)  # numbers, true/false, null
    except ValueError:
        value = raw  # a word such as additive
    return key.strip(), value


def _kw(x: float | None, *, width: int = 0) -> str:
    return f"{'-' if x is None else f'{x:.3f}':>{width}}"


class Command(BaseCommand):
    help = (
        "Compute one site's baseline for one event from a readings CSV (start,value: aware ISO start, kWh) "
        "and print per interval the baseline, actual and reduction kW, the days used and skipped, and "
        "the adjustment. Needs no database."
    )
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--method", required=True, help=f"One of {', '.join(METHODS)}.")
        parser.add_argument("--data", required=True, type=Path, help="Readings CSV: start,value.")
        parser.add_argument("--event-start", required=True, help="Aware ISO time, e.g. 2025-07-15T14:00:00-04:00.")
        parser.add_argument("--event-end", required=True, help="Aware ISO time; the event is [start, end).")
        parser.add_argument(
            "--event-days", type=Path, help="Other event days (one date a line) never used as baseline days."
        )
        parser.add_argument(
            "--market", help=f"Market code for holidays and the default time zone ({', '.join(MARKET_CALENDARS)})."
        )
        parser.add_argument("--time-zone", help="IANA zone of the market clock (default: the market's).")
        parser.add_argument(
            "--param",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="Override a method parameter (repeatable), e.g. adjustment_cap=0.4.",
        )
        parser.add_argument(
            "--format",
            choices=("table", "csv"),
            default="table",
            help="csv: the intervals as CSV on stdout, the days and adjustment on stderr.",
        )

    def handle(self, *args, **options):
        try:
            method = get_method(options["method"])
        except BaselineError as exc:
            raise CommandError(str(exc)) from None
        start, end = (self._time(options[name], f"--{name.replace('_', '-')}") for name in ("event_start", "event_end"))
        if end <= start:
            raise CommandError("--event-end must be after --event-start.")
        market = options["market"].upper() if options["market"] else None
        if market is not None and market not in MARKET_TIME_ZONES:
            raise CommandError(f"--market {options['market']!r} is not one of {', '.join(MARKET_TIME_ZONES)}.")
        time_zone = options["time_zone"] or MARKET_TIME_ZONES.get(market)
        if time_zone is None:
            raise CommandError("Give --time-zone or a --market to take it from.")
        if method.uses_calendar and market is None:
            raise CommandError(f"{method.code} skips holidays: give --market for its holiday calendar.")
        params = {}
        for text in options["param"]:
            key, value = _param(text)
            if key in params:
                raise CommandError(f"--param {key} is given twice.")
            params[key] = value
        try:
            readings = parse_readings(self._file(options["data"], "--data"), name=str(options["data"].name))
            event_days = frozenset()
            if options["event_days"] is not None:
                event_days = parse_event_days(
                    self._file(options["event_days"], "--event-days"), name=str(options["event_days"].name)
                )
            result = compute_baseline(
                method=method.code,
                readings=readings,
                event_start=start,
                event_end=end,
                time_zone=time_zone,
                market=market,
                event_days=event_days,
                params=params,
            )
        except BaselineError as exc:
            field = exc.problems[0].field
            raise CommandError(f"{exc} [{exc.code}{', ' + field if field else ''}]") from None
        self._print(result, ZoneInfo(time_zone), options["format"], market)

    def _time(self, text: str, option: str) -> datetime:
        try:
            at = datetime.fromisoformat(text)
        except ValueError:
            raise CommandError(f"{option} {text!r} is not an ISO 8601 date and time.") from None
        if at.utcoffset() is None:
            raise CommandError(f"{option} {text!r} needs its UTC offset (e.g. -04:00).")
        return at

    def _file(self, path: Path, option: str) -> bytes:
        if not path.is_file():
            raise CommandError(f"{option}: no such file: {path}")
        return path.read_bytes()

    def _print(self, result, tz: ZoneInfo, form: str, market: str | None) -> None:
        intervals = result.intervals
        if form == "csv":
            header = ("start", "baseline_kw", "actual_kw", "reduction_kw")
            rows = (
                (
                    i.start.astimezone(tz).isoformat(),
                    *("" if x is None else repr(round(x, 6)) for x in (i.baseline_kw, i.actual_kw, i.reduction_kw)),
                )
                for i in intervals
            )
            write_csv(self.stdout, header, rows, lineterminator="\n")
            out = self.stderr
        else:
            out = self.stdout
            out.write(
                f"{result.method} ({market or 'no market'}, {tz.key}, {result.interval_minutes}-minute intervals)"
            )
            out.write(f"{'start':<26} {'baseline kW':>12} {'actual kW':>12} {'reduction kW':>13}")
            for i in intervals:
                out.write(
                    f"{i.start.astimezone(tz).isoformat():<26} {_kw(i.baseline_kw, width=12)} "
                    f"{_kw(i.actual_kw, width=12)} {_kw(i.reduction_kw, width=13)}"
                )
        if result.reference_window:
            a, b = result.reference_window
            out.write(f"Reference window: {a.astimezone(tz).isoformat()} to {b.astimezone(tz).isoformat()}")
        if result.days_used or result.skipped:
            out.write(
                f"Days used ({len(result.days_used)}): {', '.join(d.isoformat() for d in result.days_used) or 'none'}"
            )
            out.write("Days skipped:")
            # Days of another type and eligible days older than those chosen are many and
            # say little one by one: counted, not listed.
            counted = {"not_like_day": 0, "not_needed": 0}
            for day, reason in result.skipped.items():
                if reason in counted:
                    counted[reason] += 1
                else:
                    out.write(f"  {day.isoformat()} {day:%a} {reason}")
            for reason, count in counted.items():
                if count:
                    out.write(f"  ({count} more day(s): {reason})")
        adjustment = result.adjustment
        window = ""
        if adjustment.window:
            window = f" [{adjustment.window[0].astimezone(tz).isoformat()} to {adjustment.window[1].astimezone(tz).isoformat()})"
        if adjustment.kind == "none":
            text = "none"
        elif adjustment.value is None:
            text = f"{adjustment.kind}, not applied ({adjustment.reason})"
        elif adjustment.kind == "additive":
            text = f"additive {adjustment.value:+.3f} kW" + (
                f" (capped from {adjustment.uncapped:+.3f} kW)" if adjustment.capped else ""
            )
        else:
            text = f"multiplicative x{adjustment.value:.4f}" + (
                f" (capped from x{adjustment.uncapped:.4f})" if adjustment.capped else ""
            )
        out.write(f"Adjustment: {text}{window}")
        out.write(f"Flags: {', '.join(sorted(result.flags)) or 'none'}")

from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from django.core.management.base import BaseCommand, CommandError

from aggregator.reference.holidays import MARKET_TIME_ZONES
from enrollment.models import Site
from settlement.baselines import METHODS, get_method
from settlement.baselines.accuracy import DAY_KINDS, baseline_accuracy
from settlement.baselines.csv_input import parse_event_days, parse_readings
from settlement.baselines.errors import BaselineError
from settlement.management.commands.baseline import _param
from settlement.services import lookback, site_history


class Command(BaseCommand):
    help = (
        "Test whether a baseline method is accurate enough for a site (PJM's relative root-mean-square error): "
        "each test day is baselined as if it had an event over --hours and compared with the site's load. "
        "Readings from the site's meter (--site) or a CSV (--data start,value). Prints each day's error and "
        "the rRMSE, PASS when it is at most --threshold percent."
    )

    def add_arguments(self, parser):
        parser.add_argument("--method", required=True, help=f"One of {', '.join(METHODS)}.")
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--site", type=int, help="A site's id: its meter readings, dispatch and retail event days.")
        source.add_argument("--data", type=Path, help="Readings CSV: start,value (aware ISO start, kWh).")
        parser.add_argument("--from", dest="first", required=True, help="First test day, YYYY-MM-DD.")
        parser.add_argument("--to", dest="last", required=True, help="Last test day, YYYY-MM-DD.")
        parser.add_argument("--hours", required=True, help="Test hours, local [from, to), e.g. 14-19.")
        parser.add_argument("--market", help="Market code (with --data; a site has its own).")
        parser.add_argument("--event-days", type=Path, help="With --data: event days (one date a line).")
        parser.add_argument("--days", choices=DAY_KINDS, default="weekdays", help="Which days are test days.")
        parser.add_argument("--threshold", type=float, default=20.0, help="Pass at or below this rRMSE %% (PJM: 20).")
        parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="Override a parameter.")

    def handle(self, *args, **options):
        try:
            method = get_method(options["method"])
        except BaselineError as exc:
            raise CommandError(str(exc)) from None
        first, last = (self._day(options[k], f"--{o}") for k, o in (("first", "from"), ("last", "to")))
        hours = self._hours(options["hours"])
        params: dict = {}
        for text in options["param"]:
            key, value = _param(text)
            params[key] = value
        try:
            if options["site"] is not None:
                site = Site.objects.select_related("market").filter(pk=options["site"]).first()
                if site is None:
                    raise CommandError(f"--site: no site {options['site']}.")
                market, time_zone = site.market.code, site.market.time_zone
                tz = ZoneInfo(time_zone)
                start = datetime.combine(first, time(0), tz) - lookback(method.code, params) - timedelta(days=1)
                end = datetime.combine(last + timedelta(days=1), time(0), tz)
                readings, event_days = site_history(site.pk, start, end)
            else:
                market = (options["market"] or "").upper() or None
                if market is not None and market not in MARKET_TIME_ZONES:
                    raise CommandError(f"--market {options['market']!r} is not one of {', '.join(MARKET_TIME_ZONES)}.")
                if market is None:
                    raise CommandError("--market: needed with --data (holidays and the time zone).")
                time_zone = MARKET_TIME_ZONES[market]
                readings = parse_readings(self._file(options["data"], "--data"), name=options["data"].name)
                event_days = frozenset()
                if options["event_days"] is not None:
                    event_days = parse_event_days(self._file(options["event_days"], "--event-days"))
            report = baseline_accuracy(
                method=method.code,
                readings=readings,
                first=first,
                last=last,
                hours=hours,
                time_zone=time_zone,
                market=market,
                params=params,
                event_days=event_days,
                days=options["days"],
                threshold_pct=options["threshold"],
            )
        except BaselineError as exc:
            field = exc.problems[0].field
            raise CommandError(f"{exc} [{exc.code}{', ' + field if field else ''}]") from None
        out = self.stdout
        out.write(f"{method.code}, test hours {hours[0]:02d}:00-{hours[1]:02d}:00 local, {first} to {last}")
        out.write(f"{'day':<14} {'baseline kW':>12} {'actual kW':>12} {'RMSE kW':>10}")
        for d in report.days:
            out.write(f"{d.day.isoformat()} {d.day:%a} {d.baseline_kw:>12.3f} {d.actual_kw:>12.3f} {d.rmse_kw:>10.3f}")
        for day, why in report.skipped.items():
            out.write(f"{day.isoformat()} {day:%a}  not a test day: {why}")
        if report.rrmse_pct is None:
            raise CommandError("No test day had a baseline and load: nothing to measure accuracy on.")
        verdict = "PASS" if report.passed else "FAIL"
        out.write(
            f"{len(report.days)} test day(s), {report.intervals} interval(s): RMSE {report.rmse_kw:.3f} kW, "
            f"mean load {report.mean_actual_kw:.3f} kW, rRMSE {report.rrmse_pct:.1f}% "
            f"(threshold {report.threshold_pct:g}%): {verdict}"
        )

    def _day(self, text: str, option: str) -> date:
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise CommandError(f"{option} {text!r} is not a date, YYYY-MM-DD.") from None

    def _hours(self, text: str) -> tuple[int, int]:
        try:
            a, b = (int(x) for x in text.split("-"))
        except ValueError:
            raise CommandError(f"--hours {text!r}: write from-to in whole hours, e.g. 14-19.") from None
        if not 0 <= a < b <= 24:
            raise CommandError(f"--hours {text!r}: 0 <= from < to <= 24.")
        return a, b

    def _file(self, path: Path, option: str) -> bytes:
        if not path.is_file():
            raise CommandError(f"{option}: no such file: {path}")
        return path.read_bytes()

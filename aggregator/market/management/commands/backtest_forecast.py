import math

from django.core.management.base import BaseCommand, CommandError

from aggregator.market.forecasting.backtest import MODELS, NoHistory, run_backtest


def _figure(value: float, unit: str) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}{unit}" if unit == "%" else f"{value:.2f}"


class Command(BaseCommand):
    help = (
        "Backtest the flexibility forecast over stored history: forecasts issued as of each of the last N days from "
        "what was known before, scored against what the load-type members read; prints per horizon MAPE, bias and "
        "pinball loss of the learned model, persistence and the nameplate capability model."
    )

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=14, help="Days to issue forecasts on (default 14).")
        parser.add_argument("--resource", type=int, nargs="+", dest="resources", help="Virtual resource ids.")

    def handle(self, *args, days, resources, **options):
        if days < 1:
            raise CommandError("--days: at least 1.")
        try:
            report = run_backtest(resource_ids=resources, days=days)
        except NoHistory as missing:
            raise CommandError(missing.problems[0].message) from None
        write = self.stdout.write
        write(
            f"Backtest: {report.resources} resource(s), {len(report.issues)} issue(s) "
            f"from {report.issues[0]:%Y-%m-%d %H:%M} UTC"
            if report.issues
            else "Backtest: no issue days"
        )
        for title, table in (("Hourly (48 h)", report.hourly), ("Real-time (2 h)", report.real_time)):
            write(f"\n{title}")
            if not table:
                write(f"  {report.real_time_note or 'nothing to score'}")
                continue
            write(f"  {'horizon':<10} {'model':<12} {'n':>6} {'MAPE':>8} {'bias kW':>9} {'pinball kW':>11}")
            for bucket, by_model in table.items():
                for model in MODELS:
                    if model not in by_model:
                        continue
                    s = by_model[model]
                    write(
                        f"  {bucket:<10} {model:<12} {s.intervals:>6} {_figure(s.mape_pct, '%'):>8} "
                        f"{_figure(s.bias_kw, ''):>9} {_figure(s.pinball_kw, ''):>11}"
                    )

import json
import logging
import os
import signal
import threading
from datetime import timedelta
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from aggregator.market import simulator


class Command(BaseCommand):
    help = (
        "Run the market simulator: the market's side of the HTTP adapter (POST /offers, GET /awards), clearing the "
        "offers it holds against its own price series with a merit order, posting the awards to the platform and "
        "sending one real-time dispatch. It meets the platform over HTTP only (see aggregator.market.simulator)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=int(os.environ.get("MARKET_SIMULATOR_PORT", "8100")))
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--market", default=None, help="The market it is (default CAISO, or the credentials').")
        parser.add_argument("--time-zone", default="America/Los_Angeles", help="The synthetic prices' local time.")
        parser.add_argument("--platform-url", default=None, help="Where awards and the dispatch are POSTed.")
        parser.add_argument(
            "--token",
            default=os.environ.get("MARKET_SIMULATOR_PLATFORM_TOKEN"),
            help="The platform's market token (mkt_...); default $MARKET_SIMULATOR_PLATFORM_TOKEN.",
        )
        parser.add_argument(
            "--credentials",
            default=None,
            help='A JSON file {"market": ..., "token": ..., "resources": [...]} (the demo seed writes one).',
        )
        parser.add_argument(
            "--accept-token-env",
            default="VPP_MARKET_SIM_TOKEN",
            help="The environment variable holding the token the platform's adapter must present (unset: any).",
        )
        parser.add_argument("--prices", default=None, help="A CSV start,price_per_mwh[,resource][,need_kw].")
        parser.add_argument("--need-kw", type=float, default=2000.0, help="The system need per interval (kW).")
        parser.add_argument("--net-benefits-price", type=float, default=None, help="Clear nothing below it ($/MWh).")
        parser.add_argument(
            "--clear-delay", type=float, default=None, help="Clear an offer this many seconds after it arrives."
        )
        parser.add_argument("--dispatch-in", type=float, default=None, help="Minutes until the real-time dispatch.")
        parser.add_argument("--dispatch-minutes", type=int, default=30)
        parser.add_argument("--state", default=None, help="A JSON file keeping its state across runs.")
        parser.add_argument("--once", action="store_true", help="Clear what is due, post it, and exit.")
        parser.add_argument("--wait", type=float, default=0, help="Seconds to wait for the platform to answer.")

    def handle(self, *args, **o):
        logging.basicConfig(level=logging.INFO, format="%(asctime)s market-simulator %(message)s")
        credentials = {}
        if o["credentials"]:
            try:
                credentials = json.loads(Path(o["credentials"]).read_text())
            except (OSError, ValueError) as exc:
                raise CommandError(f"Cannot read {o['credentials']}: {exc}") from exc
        market = o["market"] or credentials.get("market") or "CAISO"
        token = o["token"] or credentials.get("token")
        try:
            prices = (
                simulator.CsvPrices(o["prices"], need_kw=o["need_kw"])
                if o["prices"]
                else simulator.SyntheticPrices(time_zone=o["time_zone"], need_kw=o["need_kw"])
            )
        except (OSError, ValueError) as exc:
            raise CommandError(f"Cannot read prices: {exc}") from exc
        platform = None
        if o["platform_url"]:
            if not token:
                raise CommandError("Posting to the platform needs its market token (--token or --credentials).")
            platform = simulator.Platform(o["platform_url"], token)
            if o["wait"] and not simulator.wait_until_up(platform, seconds=o["wait"]):
                raise CommandError(f"{o['platform_url']} did not answer within {o['wait']:.0f} s.")
        market_sim = simulator.MarketSimulator(
            market=market,
            prices=prices,
            accept_token=os.environ.get(o["accept_token_env"]) or None,
            platform=platform,
            clear_delay=None if o["clear_delay"] is None else timedelta(seconds=o["clear_delay"]),
            net_benefits_price=o["net_benefits_price"],
            dispatch_in=None if o["dispatch_in"] is None else timedelta(minutes=o["dispatch_in"]),
            dispatch_minutes=o["dispatch_minutes"],
            resources=list(credentials.get("resources", [])),
            state_path=Path(o["state"]) if o["state"] else None,
        )
        if o["once"]:
            published = market_sim.clear_due()
            posted = market_sim.post_pending()
            self.stdout.write(f"Cleared {len(published)} award(s); the platform took {posted}.")
            return
        server = market_sim.server(o["host"], o["port"])
        simulator.serve_in_thread(server)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        self.stdout.write(
            f"Market simulator ({market}) on http://{o['host']}:{server.server_address[1]}/ "
            f"(POST /offers, GET /awards); awards to {o['platform_url'] or 'nobody'}."
        )
        self.stdout.flush()
        try:
            market_sim.run(stop)
        except KeyboardInterrupt:
            pass
        finally:
            server.shutdown()
            server.server_close()
            self.stdout.write("Market simulator stopped.")

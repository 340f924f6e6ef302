import logging
import os

from django.core.management.base import BaseCommand, CommandError

from aggregator.demo import story
from aggregator.demo.simulator import runner


class Command(BaseCommand):
    help = (
        "Run the simulated device fleet against the device API over HTTP, each device with its own token "
        "(by default the demo tokens the seed wrote)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--url", default=f"http://127.0.0.1:{os.environ.get('PORT', '8000')}", help="The platform's base URL."
        )
        parser.add_argument("--tokens", default=None, help='A JSON file {"tokens": [...]}; default: the demo\'s.')
        parser.add_argument(
            "--seconds", type=float, default=None, help="Stop after this long (default: run until stopped)."
        )
        parser.add_argument("--threads", type=int, default=8)
        parser.add_argument("--wait", type=float, default=0, help="Seconds to wait for the platform to answer first.")
        parser.add_argument(
            "--ocpp-url",
            default=f"ws://127.0.0.1:{os.environ['OCPP_PORT']}" if os.environ.get("OCPP_PORT") else "",
            help="The OCPP central system (ws://host:port) the seed's OCPP chargers connect to; empty: none do.",
        )

    def handle(self, *args, url, tokens, seconds, threads, wait, ocpp_url, **options):
        path = tokens or story.tokens_file()
        try:
            token_list = runner.load_tokens(path)
        except (OSError, ValueError, KeyError) as exc:
            raise CommandError(
                f"Cannot read device tokens from {path}: {exc}. Run `manage.py seed_demo` first."
            ) from exc
        logging.basicConfig(level=logging.INFO, format="%(asctime)s simulator %(message)s")
        api = runner.DeviceAPI(url)
        if not runner.wait_until_up(api, seconds=wait):
            raise CommandError(f"{url} did not answer within {wait:.0f} s.")
        fleet = runner.Fleet(
            api=api,
            tokens=token_list,
            threads=threads,
            ocpp=runner.load_ocpp(path) if ocpp_url else [],
            ocpp_url=ocpp_url,
        )
        try:
            count = fleet.discover()
            if not count:
                raise CommandError(f"None of the {len(token_list)} tokens was accepted by {url}.")
            over_ocpp = len(fleet.ocpp.entries) if fleet.ocpp else 0
            self.stdout.write(
                f"Simulating {count} devices on {len(fleet.sites)} sites against {url} ({over_ocpp} EV chargers over OCPP)."
            )
            self.stdout.flush()
            fleet.run(seconds=seconds)
        except KeyboardInterrupt:
            pass
        finally:
            fleet.close()
            self.stdout.write(f"Simulator stopped: {fleet.stats.line()}")

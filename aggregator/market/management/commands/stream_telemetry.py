"""Scan every market's resources at its telemetry scan rate and push the samples (a long-running process)."""

import signal
import threading

from django.core.management.base import BaseCommand

from aggregator.market import telemetry


class Command(BaseCommand):
    help = (
        "Aggregate each registered resource's real-time kW from its members' heartbeats at every instant of its "
        "market's scan grid, store it and push it where the market's connection says. Runs until stopped."
    )

    def add_arguments(self, parser):
        parser.add_argument("--pushers", type=int, default=4, help="Threads pushing to market endpoints.")

    def handle(self, *args, pushers, **options):
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        self.stdout.write("Streaming telemetry to the markets (stop with SIGTERM or Ctrl-C).")
        telemetry.stream(stop=stop, pushers=pushers)
        self.stdout.write("Telemetry stream stopped.")

import asyncio
import logging
import os
import signal
import ssl

from django.core.management.base import BaseCommand

from dispatch.ocpp.server import Node


class Command(BaseCommand):
    help = (
        "Run an OCPP server process (central system) for EV chargers: OCPP 1.6J and 2.0.1 over websockets at "
        "ws://HOST:PORT/ocpp/<charger identity>, HTTP Basic with the charger's password. Run several behind a "
        "load balancer; each hears of its own chargers' commands through Redis."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("OCPP_HOST", "0.0.0.0"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("OCPP_PORT", "9000")))
        parser.add_argument("--db-threads", type=int, default=int(os.environ.get("OCPP_DB_THREADS", "8")))
        parser.add_argument("--certificate", help="A PEM certificate chain (with --key) to serve wss:// itself.")
        parser.add_argument("--key", help="The certificate's private key (PEM).")

    def handle(self, *args, host, port, db_threads, certificate, key, verbosity, **options):
        if verbosity < 2:  # the ocpp package logs every frame at INFO; -v 2 shows them
            logging.getLogger("ocpp").setLevel(logging.WARNING)
        context = None
        if certificate:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.load_cert_chain(certificate, key)

        async def main():
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, stop.set)
            node = Node(host=host, port=port, db_threads=db_threads)
            self.stdout.write(
                f"OCPP central system {node.name} on {'wss' if context else 'ws'}://{host}:{port}/ocpp/<identity>"
            )
            await node.run(ssl_context=context, stop=stop)

        asyncio.run(main())

"""gunicorn settings, read from the environment so one file serves local runs and production."""

import multiprocessing
import os

bind = os.environ.get("BIND", f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}")
workers = int(os.environ.get("WEB_CONCURRENCY", max(2, multiprocessing.cpu_count())))
threads = int(os.environ.get("WEB_THREADS", "4"))
worker_class = "gthread"
timeout = int(os.environ.get("WEB_TIMEOUT", "60"))
graceful_timeout = 20
max_requests = 5000
max_requests_jitter = 500
accesslog = "-"
errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


def post_fork(server, worker):
    # A device batch allocates tens of thousands of short-lived objects; with the default
    # thresholds the cyclic collector runs many times per request for little garbage.
    # Objects loaded at start-up are frozen out of collections altogether.
    import gc

    gc.freeze()
    gc.set_threshold(int(os.environ.get("GC_THRESHOLD", "50000")), 20, 20)

"""Run the benchmarks under tests/bench/ (`make bench`) and print their figures.

Each `bench_*.py` module has `run() -> list[str]` (lines of figures) and may set
TARGET_FAILED, and a RATIOS list of its figures against their bare limits (tests/bench/ratios.py),
printed together in a closing table. They run against a fresh database `<name>_bench` on the same
PostgreSQL server as DATABASE_URL, so the development data is left alone.

    python tests/bench/run.py [name-substring ...]

Sizes come from the environment (BENCH_INGEST_SECONDS, BENCH_DISPATCH_DEVICES, BENCH_SETTLEMENT_SITES,
BENCH_CONSOLE_REPEATS, ...: see each module); e.g. a quick check of one:
    BENCH_DISPATCH_DEVICES=10000 BENCH_POLL_SECONDS=5 python tests/bench/run.py dispatch
"""

import importlib
import os
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def bench_database_url() -> str:
    parts = urlsplit(os.environ["DATABASE_URL"])
    name = parts.path.lstrip("/") or "aggregator"
    return urlunsplit(parts._replace(path=f"/{name}_bench"))


def recreate_database(url: str) -> None:
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    maintenance = urlunsplit(parts._replace(path="/postgres")).replace("postgres://", "postgresql://", 1)
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def bench_redis_url() -> str:
    """Database 15 of the same Redis: bench workers must not take the development queue's tasks."""
    parts = urlsplit(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    return urlunsplit(parts._replace(path="/15"))


def main(selected: list[str]) -> int:
    from tests.bench.ratios import table

    os.environ["DATABASE_URL"] = bench_database_url()
    os.environ["REDIS_URL"] = bench_redis_url()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aggregator.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    recreate_database(os.environ["DATABASE_URL"])
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    modules = sorted(p.stem for p in Path(__file__).parent.glob("bench_*.py"))
    modules = [m for m in modules if not selected or any(s in m for s in selected)]
    failed = []
    ratios = []
    for name in modules:
        module = importlib.import_module(f"tests.bench.{name}")
        print(f"== {name}: {module.__doc__.strip().splitlines()[0]}", flush=True)
        started = time.perf_counter()
        for line in module.run():
            print(f"   {line}", flush=True)
        print(f"   ({time.perf_counter() - started:.1f} s in all)", flush=True)
        module_ratios = getattr(module, "RATIOS", [])
        ratios += module_ratios
        if getattr(module, "TARGET_FAILED", False) or any(r.met is False for r in module_ratios):
            failed.append(name)
    if ratios:
        print("== each figure against its bare limit, measured in the same run", flush=True)
        for line in table(ratios):
            print(f"   {line}", flush=True)
    if failed:
        print(f"Targets missed: {', '.join(failed)}")
        return 1
    print("All targets met.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

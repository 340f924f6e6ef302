"""The platform's settings with one more URL, /bench/bare/: Django's bare view, for the console's bare limit."""

from aggregator.settings import *  # noqa: F403

ROOT_URLCONF = "tests.bench.bare_urls"

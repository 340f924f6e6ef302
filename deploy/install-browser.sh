#!/bin/sh
# The browser tests drive Debian's Chromium headless through Playwright. Install it where
# it is missing and this machine can (root with apt); elsewhere set CHROMIUM to a Chrome or
# Chromium binary, or the browser tests are skipped with that reason.
set -u
if [ -n "${CHROMIUM:-}" ] || command -v chromium >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing Debian's chromium for the browser tests"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1; } \
        || echo "Could not install chromium: the browser tests will be skipped." >&2
else
    echo "No Chromium found (set CHROMIUM=/path/to/chromium): the browser tests will be skipped." >&2
fi
exit 0

"""The WSGI entry point: Django, with the device command poll's cached answers served first.

A device's repeated poll is answered from Redis (`dispatch.poll_cache`, with the token
checked in PostgreSQL) in a fraction of the time Django's middleware alone takes, and it
is the one request every device makes every few seconds during an event. Only a hit is
served here, with the headers the middleware would add; everything else, a miss included,
goes through Django (whose poll view stores the answer for next time). A chunked request body is read
whole first (aggregator.core.api.chunked): Django reads only as far as a Content-Length.
"""

import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aggregator.settings")
django_application = get_wsgi_application()

from django.conf import settings  # noqa: E402  (settings are configured by the line above)
from django.http.request import split_domain_port, validate_host  # noqa: E402

from aggregator.core.api import chunked  # noqa: E402
from dispatch.api import poll  # noqa: E402

POLL_PATH = "/api/device/v1/commands"
_STATUS = {200: "200 OK", 429: "429 Too Many Requests"}


def _security_headers(secure: bool) -> list[tuple[str, str]]:
    """What SecurityMiddleware and XFrameOptionsMiddleware add to an API answer."""
    headers = [("X-Frame-Options", settings.X_FRAME_OPTIONS)]
    if settings.SECURE_CONTENT_TYPE_NOSNIFF:
        headers.append(("X-Content-Type-Options", "nosniff"))
    if settings.SECURE_REFERRER_POLICY:
        headers.append(("Referrer-Policy", settings.SECURE_REFERRER_POLICY))
    if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
        headers.append(("Cross-Origin-Opener-Policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY))
    if secure and settings.SECURE_HSTS_SECONDS:
        value = f"max-age={settings.SECURE_HSTS_SECONDS}"
        if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
            value += "; includeSubDomains"
        if settings.SECURE_HSTS_PRELOAD:
            value += "; preload"
        headers.append(("Strict-Transport-Security", value))
    return headers


def _secure(environ) -> bool:
    if settings.SECURE_PROXY_SSL_HEADER:
        header, value = settings.SECURE_PROXY_SSL_HEADER
        if header in environ:
            return environ[header].split(",")[0].strip() == value
    return environ.get("wsgi.url_scheme") == "https"


def _cached_poll(environ):
    """(status line, headers, body) of a poll answered from its stored answer, or None."""
    authorization = environ.get("HTTP_AUTHORIZATION", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or environ.get("QUERY_STRING"):
        return None
    secure = _secure(environ)
    if settings.SECURE_SSL_REDIRECT and not secure:
        return None  # Django answers with its redirect
    domain, _ = split_domain_port(environ.get("HTTP_HOST") or environ.get("SERVER_NAME", ""))
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return None  # Django answers 400, as for any request
    found = poll.cached(token.strip())
    if found is None:
        return None
    status, content, extra = found
    content = content.encode()
    headers = [
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(content))),
        ("Vary", "Authorization"),
        *extra.items(),
        *_security_headers(secure),
    ]
    return _STATUS[status], headers, content


def application(environ, start_response):
    _, too_large = chunked.buffered(environ)  # a chunked body, read whole so that Django sees it
    if too_large is not None:
        start_response(
            "413 Content Too Large", [("Content-Type", "application/json"), ("Content-Length", str(len(too_large)))]
        )
        return [too_large]
    if environ.get("PATH_INFO") == POLL_PATH and environ.get("REQUEST_METHOD") == "GET":
        found = _cached_poll(environ)
        if found is not None:
            status, headers, content = found
            start_response(status, headers)
            return [content]
    return django_application(environ, start_response)


# A device batch allocates tens of thousands of short-lived objects; with the default
# thresholds the cyclic collector runs many times per request for little garbage.
# What is loaded at start-up is frozen out of collections altogether.
gc.freeze()
gc.set_threshold(int(os.environ.get("GC_THRESHOLD", "50000")), 20, 20)

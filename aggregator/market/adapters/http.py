"""The HTTP adapter: offers POSTed to the market as JSON, awards fetched from it (the market simulator speaks it).

The market's side of the protocol (aggregator.market.simulator serves it):

    POST {base_url}/offers            body: an offer (aggregator.market.wire.OfferWire)
        201 (or 200 for a resend)     {"receipt": "<the market's reference>", "offer_id": "..."}
    GET  {base_url}/awards?after=<cursor>&limit=<n>
        200                           {"awards": [AwardWire, ...], "cursor": "<position after them>", "more": bool}

Both carry `Authorization: Bearer <token>`, the token read from the environment variable the connection names
(`token_env`; secrets are never stored). A request that takes longer than TIMEOUT_SECONDS, an answer that is not
2xx, a redirect (never followed: it would carry the token elsewhere) or a body that is not the documented JSON is
SubmissionFailed for an offer and FetchFailed for awards.

The cursor is kept on the connection (`awards_cursor`) and written in the caller's transaction: the award poll
(aggregator.market.awards.poll_awards) fetches and receives in one, so a poll that fails part-way leaves the cursor
where it was.
"""

import json
import os
import urllib.error
import urllib.request
from urllib.parse import urlencode

from aggregator.market.adapters import FetchFailed, SubmissionFailed, register
from aggregator.market.models import MarketConnection
from aggregator.market.wire import AwardWire, OfferWire

TIMEOUT_SECONDS = 10
PAGE = 200  # awards asked for per request
MAX_PAGES = 50  # per poll; the rest waits for the next one
MAX_BODY = 10 * 1024 * 1024


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # urllib then raises HTTPError with the 3xx code


_OPENER = urllib.request.build_opener(_NoRedirect)


class _Failed(Exception):
    pass


@register(MarketConnection.Adapter.HTTP)
class HttpAdapter:
    name = "http"

    def __init__(self, connection: MarketConnection):
        self.connection = connection
        self.base_url = connection.base_url.rstrip("/")

    def _token(self) -> str | None:
        name = self.connection.token_env
        if not name:
            return None
        token = os.environ.get(name)
        if not token:
            raise _Failed(f"the environment variable {name} (the connection's token_env) is not set")
        return token

    def _request(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        if not self.base_url:
            raise _Failed("the connection has no base_url")
        headers = {"Accept": "application/json"}
        token = self._token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self.base_url + path, data=data, headers=headers, method=method)
        try:
            with _OPENER.open(request, timeout=TIMEOUT_SECONDS) as response:
                status, raw = response.status, response.read(MAX_BODY + 1)
        except urllib.error.HTTPError as exc:
            raise _Failed(f"{method} {path} answered {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise _Failed(f"{method} {path} failed: {getattr(exc, 'reason', exc)}") from None
        if len(raw) > MAX_BODY:
            raise _Failed(f"{method} {path} answered more than {MAX_BODY} bytes")
        try:
            answer = json.loads(raw)
        except ValueError:
            raise _Failed(f"{method} {path} answered {status} without JSON") from None
        if not isinstance(answer, dict):
            raise _Failed(f"{method} {path} answered {status} with JSON that is not an object")
        return status, answer

    def submit(self, offer: OfferWire) -> str:
        try:
            _, answer = self._request("POST", "/offers", dict(offer))
        except _Failed as exc:
            raise SubmissionFailed(str(exc)) from None
        receipt = answer.get("receipt")
        if not isinstance(receipt, str) or not receipt:
            raise SubmissionFailed("POST /offers answered without a receipt")
        return receipt[:100]

    def fetch_awards(self) -> list[AwardWire]:
        cursor = self.connection.awards_cursor
        awards: list[AwardWire] = []
        try:
            for _ in range(MAX_PAGES):
                query = urlencode({"limit": PAGE, **({"after": cursor} if cursor else {})})
                _, answer = self._request("GET", f"/awards?{query}")
                page, cursor_after = answer.get("awards"), answer.get("cursor")
                if not isinstance(page, list) or not isinstance(cursor_after, str | int | type(None)):
                    raise _Failed("GET /awards answered without an awards list and a cursor")
                awards.extend(page)
                cursor = str(cursor_after) if cursor_after not in (None, "") else cursor
                if not answer.get("more") or not page:
                    break
        except _Failed as exc:
            raise FetchFailed(str(exc)) from None
        if cursor != self.connection.awards_cursor:
            MarketConnection.objects.filter(pk=self.connection.pk).update(awards_cursor=cursor)
            self.connection.awards_cursor = cursor
        return awards

"""Request bodies sent with `Transfer-Encoding: chunked` (no Content-Length), read whole before Django sees them.

Django reads a body only as far as its Content-Length, so a chunked body arrived as empty and was refused as a
misleading 400 ("readings: required"). The WSGI entry point reads such a body (the server has de-chunked it) up
to the largest body the API accepts and hands Django the bytes with their length; a larger one is a 413 in the
one error shape, and nothing is read past the limit.
"""

import io
import json

from django.conf import settings

CHUNKED = "chunked"


def _limit() -> int:
    return int(settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 0) or 2**31


def buffered(environ) -> tuple[bool, bytes | None]:
    """(whether the request was chunked, the 413 answer's body if it was too large). Rewrites `environ`."""
    encoding = environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    if CHUNKED not in encoding or environ.get("CONTENT_LENGTH"):
        return False, None
    limit = _limit()
    stream = environ["wsgi.input"]
    data = bytearray()
    while len(data) <= limit:
        chunk = stream.read(min(65536, limit + 1 - len(data)))
        if not chunk:
            break
        data += chunk
    if len(data) > limit:
        body = {
            "type": "too_large",
            "title": f"The request body is over the {limit}-byte limit.",
            "status": 413,
            "errors": [{"field": None, "code": "too_large", "message": "Send a smaller batch."}],
        }
        return True, json.dumps(body).encode()
    environ["wsgi.input"] = io.BytesIO(bytes(data))
    environ["CONTENT_LENGTH"] = str(len(data))
    return True, None

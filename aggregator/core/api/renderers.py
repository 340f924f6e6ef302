import io
import json

from rest_framework.renderers import BaseRenderer

from aggregator.core.csv_files import write_csv


class CSVRenderer(BaseRenderer):
    """`?format=csv` (or Accept: text/csv) for views whose data is a list of flat rows.

    A view with a header object returns its rows under "members" (or "lines"); the CSV
    is those rows. Anything else that is not a list of rows (error bodies) is written
    as JSON so a client still learns what went wrong. A view that knows its columns sets
    them on the response (`csv_header`), so that an export without rows is still a CSV:
    its header line, and a Content-Type (DRF drops it from an empty body).
    """

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        response = (renderer_context or {}).get("response")
        rows = data
        if isinstance(data, dict):
            rows = next((data[key] for key in ("members", "lines") if key in data), data)
        if (response is not None and response.status_code >= 400) or not isinstance(rows, list):
            if response is not None:
                response["Content-Type"] = "application/json"  # what the body is, whatever was asked for
            return json.dumps(data, default=str).encode()
        out = io.StringIO()
        header = list(rows[0]) if rows else getattr(response, "csv_header", None)
        if header:
            write_csv(out, header, ([row.get(name, "") for name in header] for row in rows))
        return out.getvalue().encode()

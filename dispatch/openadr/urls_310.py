"""The VTN's OpenADR 3.1 base path, /openadr3/3.1.0/: the same views as 3.0.1's, speaking 3.1 (see urls.py)."""

from dispatch.openadr.models import V310
from dispatch.openadr.urls import patterns

app_name = "openadr_310"

urlpatterns = patterns(V310)

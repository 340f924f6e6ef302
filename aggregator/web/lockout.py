"""Logins locked out by django-axes: the page the user sees, and the address it counts failures against."""

from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

FRONTS = frozenset({"console", "portal"})  # their own login pages; the admin's gets the plain message


def locked_out(request: HttpRequest, original_response=None, credentials=None) -> HttpResponse:
    """The front's login page with the lock-out message (429), in place of the login's own answer."""
    minutes = max(1, round(settings.AXES_COOLOFF_TIME.total_seconds() / 60))
    message = (
        f"Too many failed logins: this account or this address is locked for {minutes} minutes. "
        "Try again later, or ask an admin to unlock it."
    )
    match = request.resolver_match
    if match is not None and match.namespace in FRONTS:
        context = {"form": AuthenticationForm(request), "locked_out": message, "next": request.POST.get("next", "")}
        return render(request, f"{match.namespace}/login.html", context, status=429)
    return HttpResponse(message, status=429, content_type="text/plain; charset=utf-8")


def client_address(request: HttpRequest) -> str | None:
    """The client's address: behind settings.LOGIN_PROXY_HOPS proxies, the one the outermost proxy saw.

    Only the addresses the trusted proxies appended are believed; anything the client put in
    X-Forwarded-For itself stands to their left and is ignored.
    """
    hops = settings.LOGIN_PROXY_HOPS
    if hops:
        forwarded = [a.strip() for a in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if a.strip()]
        if len(forwarded) >= hops:
            return forwarded[-hops]
    return request.META.get("REMOTE_ADDR")

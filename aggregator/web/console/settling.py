"""Settling an event from the console: a worker settles it while the page's progress bar follows the task (sites
settled of the event's sites), then links the new run's statement."""

import uuid

from django.core.cache import cache
from django.http import Http404
from django.shortcuts import redirect, render

from aggregator.web.console.access import operator_page
from dispatch.models import DispatchEvent
from settlement import jobs


def _key(pk: int, token: str) -> str:
    return f"console:settle:{pk}:{token}"


@operator_page(write=True)
def settle(request, pk: int):
    if request.method != "POST":
        return redirect("console:event", pk=pk)
    if not DispatchEvent.objects.filter(pk=pk).exists():
        raise Http404
    token = uuid.uuid4().hex
    cache.set(_key(pk, token), {"state": "queued"}, 86400)
    jobs.settle_event_tracked(pk, _key(pk, token), f"{request.user.get_username()} (console)")
    return redirect("console:settle-progress", pk=pk, token=token)


def progress_of(figures: dict | None) -> dict:
    figures = figures or {"state": "queued"}
    state = figures["state"]
    if state in ("done", "refused", "failed"):
        return {**figures, "percent": 100, "finished": True}
    total = figures.get("total") or 0
    percent = 5 if state == "queued" else 10 + round(85 * figures.get("done", 0) / total) if total else 10
    return {**figures, "percent": percent, "finished": False}


@operator_page()
def settle_progress(request, pk: int, token: str):
    item = DispatchEvent.objects.select_related("resource").filter(pk=pk).first()
    if item is None:
        raise Http404
    context = {"item": item, "job": progress_of(cache.get(_key(pk, token))), "section": "settlement"}
    part = request.GET.get("part") == "progress"
    return render(request, "console/settle_progress.html" if part else "console/settle.html", context)

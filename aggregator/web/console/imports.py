"""Fleet imports from the console: upload a file, watch its progress bar (fed by the import task), read its outcome."""

from django import forms
from django.core.cache import cache
from django.http import Http404
from django.shortcuts import redirect, render

from aggregator.web.console.access import operator_page
from enrollment import fleet_import
from enrollment.models import FleetImport


class UploadForm(forms.Form):
    file = forms.FileField(label="Fleet file (CSV)")


def progress_of(job: FleetImport) -> dict:
    """What the bar shows: rows checked of the file's rows, the stage, and a percentage; 100 when finished."""
    if job.finished:
        return {"done": job.rows, "total": job.rows, "stage": job.get_state_display(), "percent": 100}
    figures = cache.get(job.progress_key) or {"done": 0, "total": 0, "stage": job.get_state_display().lower()}
    total = figures["total"] or 1
    # The write is one set-based statement: checking is the first 90 %, writing the last step.
    percent = 95 if figures["stage"] == "writing" else round(90 * figures["done"] / total)
    return {**figures, "percent": percent}


@operator_page(write=True)
def fleet_imports(request):
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        job = fleet_import.queue_import(file=form.cleaned_data["file"], by=request.user)
        return redirect("console:fleet-import", pk=job.pk)
    return render(
        request,
        "console/fleet_imports.html",
        {
            "form": form,
            "imports": FleetImport.objects.select_related("created_by")[:20],
            "section": "imports",
        },
        status=400 if form.errors else 200,
    )


@operator_page()
def fleet_import_page(request, pk: int):
    job = FleetImport.objects.filter(pk=pk).first()
    if job is None:
        raise Http404
    context = {"job": job, "progress": progress_of(job), "report": job.report or {}, "section": "imports"}
    template = (
        "console/fleet_import_progress.html" if request.GET.get("part") == "progress" else "console/fleet_import.html"
    )
    return render(request, template, context)

from datetime import UTC, datetime, timedelta

from dispatch.models import DispatchEvent


def _form(resource, start, end, target_kw="60"):
    return {
        "resource": resource.pk,
        "source": "operator_test",
        "target_kind": "reduction",
        "start": start.strftime("%Y-%m-%d %H:%M:%S"),
        "end": end.strftime("%Y-%m-%d %H:%M:%S"),
        "notify_at": "",
        "target_kw": target_kw,
        "ramp_seconds": "0",
        "over_commit_pct": "",
        "external_ref": "",
    }


def test_an_operator_schedules_an_event_from_the_admin_through_the_services_rules(
    browser, make_resource, django_capture_on_commit_callbacks
):
    resource = make_resource(generators=2)
    start = (datetime.now(UTC) + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    with django_capture_on_commit_callbacks(execute=False):
        response = browser.post(
            "/admin/dispatch/dispatchevent/add/", _form(resource, start, start + timedelta(hours=2))
        )
    assert response.status_code == 302, response.content.decode()[:2000]
    event = DispatchEvent.objects.get()
    assert event.state == "scheduled" and event.intervals.count() == 2 and event.created_by_label == "root"
    assert browser.get(f"/admin/dispatch/dispatchevent/{event.pk}/change/").status_code == 200


def test_the_admin_shows_the_services_refusal_and_writes_nothing(browser, make_resource):
    resource = make_resource(generators=2)
    start = datetime.now(UTC) - timedelta(days=1)
    response = browser.post("/admin/dispatch/dispatchevent/add/", _form(resource, start, start + timedelta(hours=2)))
    assert response.status_code == 200
    assert "start is in the past" in response.content.decode()
    assert not DispatchEvent.objects.exists()

import pytest


def test_healthz_reports_database_and_redis_without_authentication(client, db):
    body = client.get("/healthz").json()
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["redis"]["ok"] is True


def test_healthz_is_unavailable_when_a_worker_is_required_and_none_runs(client, db):
    response = client.get("/healthz?require=worker")
    assert response.status_code == 503
    assert response.json()["checks"]["workers"]["ok"] is False


# Starting a worker closes this process's database connections (Celery's Django fixup),
# which a test wrapped in a transaction cannot survive.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_healthz_runs_a_task_through_a_live_worker(client, celery_worker):
    response = client.get("/healthz?require=worker&task=1")
    body = response.json()
    assert response.status_code == 200, body
    assert body["checks"]["workers"]["ok"] is True
    assert body["checks"]["task"]["ok"] is True


def test_healthz_is_unavailable_when_redis_is_down(client, db, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["redis"]["ok"] is False

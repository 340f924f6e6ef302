import pytest

from tests.dispatch.openadr.traffic import Recorder


@pytest.fixture(autouse=True)
def vtn_traffic(monkeypatch):
    """Every VTN answer a test gets is checked against the published definition of its version."""
    recorder = Recorder().install(monkeypatch)
    yield recorder
    found = recorder.violations()
    if found:
        pytest.fail(f"{len(found)} answer(s) outside the OpenADR definitions:\n" + "\n".join(found[:40]), pytrace=False)

"""The demo's OCPP chargers (aggregator.demo.simulator.ocpp_chargers) against the real OCPP server on loopback."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from aggregator.demo.simulator import device_models, ocpp_chargers, runner
from dispatch.ocpp import mapping
from dispatch.ocpp.models import Charger
from enrollment.models import DeviceStatus
from tests.dispatch.ocpp.conftest import ev_charger, ocpp_server  # noqa: F401  (fixtures)
from tests.dispatch.test_dispatch_worker import wait_for


@pytest.mark.parametrize("version", ["ocpp1.6", "ocpp2.0.1"])
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_demo_charger_reports_over_ocpp_and_follows_its_dispatch_profile(ocpp_server, ev_charger, version):
    device, password = ev_charger()
    model = device_models.model_for(
        device_id=device.pk,
        device_type="ev_charger",
        rated_kw=device.rated_kw,
        energy_kwh=None,
        backup_reserve_pct=None,
        time_zone=device.site.time_zone,
        market=device.site.market.code,
    )
    simulated = runner.SimulatedDevice(token="", device_id=device.pk, site_id=device.site_id, model=model, ocpp=True)
    entry = {"device": device.pk, "identity": device.serial, "password": password, "version": version}
    chargers = ocpp_chargers.OcppChargers(ocpp_server.url, [entry], {device.pk: simulated})
    chargers.start()
    try:
        wait_for(lambda: Charger.objects.get(device=device).vendor == "VPP demo", timeout=10, what="the boot")
        wait_for(lambda: device.pk in chargers.stations, timeout=5, what="the charger's station")
        now = datetime.now(UTC)
        boundary = datetime.fromtimestamp(now.timestamp() // 300 * 300, UTC)
        chargers.update(device.pk, boundary + timedelta(seconds=2), plugged=True, power_kw=7.2, register_wh=1234)
        wait_for(lambda: Charger.objects.get(device=device).register_at == boundary, timeout=5, what="the meter values")
        assert DeviceStatus.objects.get(device=device).ev_plugged_in is True
        assert Charger.objects.get(device=device).register_wh == 1234

        # The server sends a dispatch profile: the simulated charger takes its limit as a reduction to execute.
        station = ocpp_server.node.stations[device.pk]
        start = now.replace(microsecond=0)
        _, duration, periods = mapping.dispatch_periods(
            [{"start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat(), "kw": 3.0}], 7.2
        )
        status, _ = asyncio.run_coroutine_threadsafe(
            station.set_profile(
                profile_id=5,
                purpose=mapping.DISPATCH_PURPOSE[version],
                stack_level=1,
                start=start,
                duration=duration,
                periods=periods,
                valid_to=start + timedelta(hours=1),
            ),
            ocpp_server.loop,
        ).result(10)
        assert status == ("Rejected" if model.opts_out("ocpp") else "Accepted")
        if status == "Accepted":
            [command] = simulated.commands.values()
            assert [round(i["kw"], 3) for i in command["schedule"]] == [3.0]
    finally:
        chargers.close()

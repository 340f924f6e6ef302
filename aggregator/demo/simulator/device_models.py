"""The simulator's model of each demo device, from what the device API tells a device about itself.

Apart from behaviour.py, which stays free of Django so that any process can replay the same story.
"""

from aggregator.demo.fleet import LAYOUTS
from aggregator.demo.simulator import behaviour

COMMERCIAL_TYPES = frozenset({"generator", "load_block"})


def model_for(
    *, device_id: int, device_type: str, rated_kw, energy_kwh, backup_reserve_pct, time_zone: str, market: str
) -> behaviour.DeviceModel:
    """The simulator's model of a device, from what the device API tells a device about itself."""
    return behaviour.DeviceModel(
        device_id=device_id,
        device_type=device_type,
        rated_kw=float(rated_kw),
        energy_kwh=float(energy_kwh) if energy_kwh is not None else None,
        backup_reserve_pct=float(backup_reserve_pct) if backup_reserve_pct is not None else None,
        time_zone=time_zone,
        latitude=LAYOUTS[market].latitude if market in LAYOUTS else 40.0,
        seed=device_id,
    )

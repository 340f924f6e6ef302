"""A synthetic but plausible fleet as fleet-import CSV, for the demo seed and benchmarks.

Residential customers get a home battery, a smart thermostat or an EV charger (some
several); commercial and industrial customers get larger batteries, controllable
load blocks and standby generators. Deterministic for a given seed.
"""

import csv
import io
import random
from dataclasses import dataclass

from enrollment.fleet_import import COLUMNS


@dataclass(frozen=True)
class MarketLayout:
    code: str
    utility: str
    zones: tuple[str, ...]
    nodes_per_zone: int
    region: str
    latitude: float
    longitude: float


LAYOUTS = {
    "CAISO": MarketLayout("CAISO", "PG&E", ("PGAE", "SCE", "SDGE"), 2, "CA", 37.5, -121.9),
    "PJM": MarketLayout("PJM", "PECO", ("PECO", "PSEG", "BGE"), 2, "PA", 40.0, -75.2),
    "NYISO": MarketLayout("NYISO", "Con Edison", ("NYC", "LONGIL"), 2, "NY", 40.7, -73.9),
    "ERCOT": MarketLayout("ERCOT", "Oncor", ("LZ_NORTH", "LZ_HOUSTON"), 2, "TX", 32.8, -96.8),
}


def pricing_nodes(layout: MarketLayout, nodes: int | None = None) -> list[tuple[str, str]]:
    """(pricing node, zone) pairs for a market; `nodes` overrides the per-zone count."""
    per_zone = layout.nodes_per_zone if nodes is None else max(1, -(-nodes // len(layout.zones)))
    pairs = [(f"{zone}_N{n:03d}", zone) for zone in layout.zones for n in range(1, per_zone + 1)]
    return pairs[:nodes] if nodes else pairs


def _device_rows(rng: random.Random, kind: str) -> list[dict]:
    if kind == "residential":
        rows = []
        roll = rng.random()
        if roll < 0.55 or roll > 0.9:
            rows.append(
                {
                    "device_type": "battery",
                    "manufacturer": rng.choice(["Tesla", "Enphase", "FranklinWH"]),
                    "model": "Home battery",
                    "rated_kw": "5",
                    "charge_kw": "5",
                    "energy_kwh": "13.5",
                    "backup_reserve_pct": rng.choice(["20", "20", "30", "50"]),
                    "round_trip_efficiency_pct": "90",
                }
            )
        if 0.45 < roll < 0.8 or roll > 0.95:
            rows.append(
                {
                    "device_type": "thermostat",
                    "manufacturer": rng.choice(["ecobee", "Google Nest", "Honeywell"]),
                    "model": "Smart thermostat",
                    "rated_kw": rng.choice(["2.5", "3", "3.5"]),
                    "max_setpoint_offset_f": "4",
                    "max_event_hours": "4",
                }
            )
        if roll >= 0.75:
            rows.append(
                {
                    "device_type": "ev_charger",
                    "manufacturer": rng.choice(["ChargePoint", "Wallbox", "Emporia"]),
                    "model": "Level 2",
                    "rated_kw": rng.choice(["7.2", "9.6", "11.5"]),
                    "min_kw": "1.4",
                    "bidirectional": "true" if rng.random() < 0.1 else "false",
                }
            )
        return rows
    rows = [
        {
            "device_type": "battery",
            "manufacturer": rng.choice(["Stem", "Tesla", "Sungrow"]),
            "model": "C&I battery",
            "rated_kw": str(rng.choice([60, 100, 125, 250])),
            "charge_kw": "60",
            "energy_kwh": "240",
            "backup_reserve_pct": "10",
            "round_trip_efficiency_pct": "88",
        }
    ]
    if rng.random() < 0.5:
        rows.append(
            {
                "device_type": "controllable_load",
                "manufacturer": "Site controls",
                "model": "HVAC block",
                "rated_kw": str(rng.choice([25, 40, 80])),
                "max_event_hours": "4",
                "notice_minutes": "30",
            }
        )
    if kind == "industrial" and rng.random() < 0.5:
        rows.append(
            {
                "device_type": "generator",
                "manufacturer": rng.choice(["Generac", "Cummins"]),
                "model": "Standby",
                "rated_kw": str(rng.choice([150, 300])),
                "min_run_minutes": "30",
                "fuel": "natural_gas",
            }
        )
    return rows


def fleet_rows(
    *,
    customers: int,
    markets: tuple[str, ...] = ("CAISO", "PJM"),
    nodes_per_market: int | None = None,
    seed: int = 2222,
    prefix: str = "DEMO",
    retail_dr_share: float = 0.05,
    devices: int | None = None,
):
    """Yield fleet-import rows (dicts). With `devices`, stop after that many devices."""
    rng = random.Random(seed)
    emitted = 0
    nodes = {code: pricing_nodes(LAYOUTS[code], nodes_per_market) for code in markets}
    serial = 0
    for n in range(1, customers + 1):
        code = markets[(n - 1) % len(markets)]
        layout = LAYOUTS[code]
        node, zone = nodes[code][((n - 1) // len(markets)) % len(nodes[code])]
        roll = rng.random()
        kind = "residential" if roll < 0.9 else "commercial" if roll < 0.97 else "industrial"
        ref = f"{prefix}-{n:07d}"
        base = {
            "customer_ref": ref,
            "customer_name": f"{'Household' if kind == 'residential' else 'Business'} {n}",
            "customer_kind": kind,
            "email": f"customer{n}@example.com",
            "utility": layout.utility,
            "meter_id": f"{prefix}M{n:09d}",
            "market": code,
            "pricing_node": node,
            "zone": zone,
            "region": layout.region,
            "latitude": f"{layout.latitude + rng.uniform(-0.5, 0.5):.6f}",
            "longitude": f"{layout.longitude + rng.uniform(-0.5, 0.5):.6f}",
            "retail_programs": "utility_dr" if rng.random() < retail_dr_share else "",
        }
        for device in _device_rows(rng, kind):
            serial += 1
            yield {**base, **device, "serial": f"{prefix}S{serial:09d}"}
            emitted += 1
            if devices is not None and emitted >= devices:
                return


def fleet_csv(**kwargs) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(fleet_rows(**kwargs))
    return out.getvalue()

"""The demo's wholesale market: the market simulator (`manage.py simulate_market`, started by `make run`) plays
CAISO. The seed registers CAISO's demo resources with it (a market resource id each), connects the market through
the HTTP adapter to the simulator's address, and issues the simulator a market token, written with the resource ids
to a file in the data folder (0600) that only the simulator reads. Run on every seed, so a data folder seeded
before this existed gets it too, and a changed simulator address is picked up.

It also forecasts the registered resources at once (beat's hourly forecast would first run an hour after start,
its real-time one five minutes after), so the first minute's offer cycle has a forecast to build offers from. The
demo's CAISO program submits its offers itself (`auto_submit_offers`, set when the programs are made), so the
whole chain runs on its own: forecast, offer, the simulator's award, the award's event, delivery, settlement.
"""

import json
import os
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from aggregator.aggregation import services as aggregation
from aggregator.aggregation.models import ResourceState, VirtualResource
from aggregator.core.access import tokens
from aggregator.market.forecasting import services as forecasting
from aggregator.market.models import MarketConnection
from aggregator.reference.models import Market
from dispatch.models import DispatchEvent, MarketCredential

DEMO_MARKET = "CAISO"
TOKEN_ENV = "VPP_MARKET_SIM_TOKEN"  # the token the platform's adapter presents to the simulator (make run sets it)
CREDENTIAL_LABEL = "demo market simulator"


def simulator_url() -> str:
    return os.environ.get("MARKET_SIMULATOR_URL", f"http://127.0.0.1:{os.environ.get('MARKET_SIMULATOR_PORT', '8100')}")


def credentials_file() -> Path:
    return settings.VPP_DATA_DIR / "demo-market-simulator.json"


def seed(*, by) -> dict:
    """Registered resources, the connection and the simulator's credentials; returns what it made."""
    market = Market.objects.get(code=DEMO_MARKET)
    with transaction.atomic():
        for resource in VirtualResource.objects.filter(
            market=market, state=ResourceState.SUBMITTED, program__code="caiso-pdr"
        ).order_by("pk"):
            aggregation.transition(
                resource=resource, action="register", by=by, market_resource_id=f"{market.code}-DER-{resource.pk:04d}"
            )
        MarketConnection.objects.update_or_create(
            market=market,
            defaults={"adapter": MarketConnection.Adapter.HTTP, "base_url": simulator_url(), "token_env": TOKEN_ENV},
        )
        registered = (
            VirtualResource.objects.filter(
                market=market, state__in=[ResourceState.REGISTERED, ResourceState.ACTIVE], program__code="caiso-pdr"
            )
            .exclude(market_resource_id="")
            .order_by("market_resource_id")
        )
        resources = list(registered.values_list("market_resource_id", flat=True))
        path = credentials_file()
        saved = json.loads(path.read_text()) if path.exists() else {}
        token = saved.get("token")
        parsed = tokens.parse(token) if token else None
        if parsed is None or not MarketCredential.objects.filter(key_id=parsed[1], revoked_at__isnull=True).exists():
            issued = tokens.issue("mkt")
            MarketCredential.objects.create(
                market=market,
                source=DispatchEvent.Source.MARKET_INSTRUCTION,
                key_id=issued.key_id,
                digest=issued.digest,
                label=CREDENTIAL_LABEL,
            )
            token = issued.plaintext
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"market": market.code, "token": token, "resources": resources}))
    path.chmod(0o600)
    forecasts = forecasting.forecast_resources(
        resource_ids=list(registered.values_list("pk", flat=True)), now=timezone.now()
    )
    return {"market": market.code, "resources": resources, "credentials": str(path), "forecasts": len(forecasts)}

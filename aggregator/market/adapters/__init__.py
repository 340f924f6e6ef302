"""Market adapters: how offers reach a market and awards come back (see aggregator.market.wire for the forms).

An adapter is chosen per market by its MarketConnection (`for_connection`). Each adapter module registers its
kind with `register`; MarketConfig.ready imports them. Adapters are data-driven (the file adapter's layouts are
data, not code per market) and tested against files and the market simulator, never a real ISO.
"""

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from aggregator.market.wire import AwardWire, OfferWire

if TYPE_CHECKING:
    from aggregator.market.models import MarketConnection


class SubmissionFailed(Exception):
    """The market did not take the offer (unreachable, refused); the offer stays unsubmitted."""


class FetchFailed(Exception):
    """The market's awards could not be fetched this time (unreachable, refused); the next poll tries again."""


class MarketAdapter(Protocol):
    name: str

    def submit(self, offer: OfferWire) -> str:
        """Send one offer version; return the market's receipt (its reference for it)."""
        ...

    def fetch_awards(self) -> list[AwardWire]:
        """Awards the market has published since the last fetch (each once; the receiver is idempotent anyway)."""
        ...


AdapterFactory = Callable[["MarketConnection"], MarketAdapter]
_FACTORIES: dict[str, AdapterFactory] = {}


def register(kind: str) -> Callable[[AdapterFactory], AdapterFactory]:
    def decorate(factory: AdapterFactory) -> AdapterFactory:
        _FACTORIES[kind] = factory
        return factory

    return decorate


def for_connection(connection: "MarketConnection") -> MarketAdapter | None:
    """The adapter a market's connection names; None when it has none (offers stay in the platform)."""
    if not connection.enabled or connection.adapter not in _FACTORIES:
        return None
    return _FACTORIES[connection.adapter](connection)

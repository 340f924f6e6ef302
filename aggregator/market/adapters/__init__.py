"""Market adapters: how offers reach a market and awards come back (see aggregator.market.wire for the forms).

An adapter is chosen per market by its MarketConnection; `for_connection` returns it. Each one is data-driven
(the file adapter's layouts are data, not code per market) and tested against files and a simulator, never a
real ISO.
"""

from typing import Protocol

from aggregator.market.wire import AwardWire, OfferWire


class SubmissionFailed(Exception):
    """The market did not take the offer (unreachable, refused); the offer stays unsubmitted."""


class MarketAdapter(Protocol):
    name: str

    def submit(self, offer: OfferWire) -> str:
        """Send one offer version; return the market's receipt (its reference for it)."""
        ...

    def fetch_awards(self) -> list[AwardWire]:
        """Awards the market has published since the last fetch."""
        ...

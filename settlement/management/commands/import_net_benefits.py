from aggregator.reference.prices import import_net_benefits
from settlement.management.commands import import_prices


class Command(import_prices.Command):
    help = (
        "Import a market's monthly net-benefits thresholds (FERC Order 745; CSV: month,price_per_mwh, month as "
        "YYYY-MM). All or nothing: with any bad row every problem is listed and nothing is written."
    )
    importer = staticmethod(import_net_benefits)
    stored = "month(s)"

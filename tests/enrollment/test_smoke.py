from aggregator.reference.models import Market


def test_markets_are_seeded_with_their_time_zones(db):
    assert Market.objects.get(code="MISO").time_zone == "Etc/GMT+5"
    assert set(Market.objects.values_list("code", flat=True)) == {
        "CAISO",
        "PJM",
        "NYISO",
        "ISO-NE",
        "MISO",
        "ERCOT",
        "SPP",
    }

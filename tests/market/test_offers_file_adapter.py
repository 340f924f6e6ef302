"""The file adapter: each layout writes an offer in its market's layout and reads it back as the same offer;
awards are read from the awards/ inbox and moved to processed/."""

import csv
import json
from datetime import UTC, datetime
from xml.etree import ElementTree as ET

import pytest

from aggregator.market import adapters
from aggregator.market.adapters.file import FileAdapter, FileLayout, layout_names, load_layout
from aggregator.market.models import MarketConnection
from tests.factories import market

OFFER = {
    "offer_id": "1234-v2",
    "market": "ERCOT",
    "resource": "DER-0001",
    "market_kind": "day_ahead",
    "window_start": "2026-11-01T05:00:00+00:00",
    "window_end": "2026-11-02T06:00:00+00:00",
    "interval_minutes": 60,
    "deadline": "2026-10-31T15:00:00+00:00",
    "intervals": [
        {
            "start": "2026-11-01T06:00:00+00:00",  # 01:00 CDT
            "min_kw": 0.0,
            "max_kw": 850.0,
            "ramp_kw_per_minute": 120.0,
            "notification_minutes": 30,
            "min_run_minutes": 0,
            "max_run_minutes": 240,
            "segments": [[300.0, 45.0], [550.0, 120.0]],
        },
        {
            "start": "2026-11-01T07:00:00+00:00",  # 01:00 CST, the repeated hour
            "min_kw": 10.0,
            "max_kw": 0.5,
            "ramp_kw_per_minute": 0.1,
            "notification_minutes": 0,
            "min_run_minutes": 15,
            "max_run_minutes": None,
            "segments": [[0.5, -20.5]],
        },
    ],
}

AWARD = {
    "award_id": "DA-2026-11-01-0001",
    "offer_id": "1234-v2",
    "resource": "DER-0001",
    "market_kind": "day_ahead",
    "intervals": [
        {"start": "2026-11-01T06:00:00+00:00", "end": "2026-11-01T07:00:00+00:00", "kw": 500.0, "price_per_mwh": 62.5},
        {"start": "2026-11-01T07:00:00+00:00", "end": "2026-11-01T08:00:00+00:00", "kw": 0.5, "price_per_mwh": 0.0},
    ],
}


def same_instants(wire: dict) -> dict:
    """The wire with every instant in UTC (a layout may carry the market's offset)."""

    def norm(value):
        return datetime.fromisoformat(value).astimezone(UTC).isoformat()

    return {
        **wire,
        **{k: norm(wire[k]) for k in ("window_start", "window_end", "deadline") if k in wire},
        "intervals": [{**i, **{k: norm(i[k]) for k in ("start", "end") if k in i}} for i in wire["intervals"]],
    }


@pytest.mark.parametrize("layout", ["spp-offer-curve-csv", "ercot-ews-offer-xml"])
def test_an_offer_round_trips_through_each_layout(tmp_path, layout):
    adapter = FileAdapter(directory=str(tmp_path), layout=layout, market_time_zone="America/Chicago")
    name = adapter.submit(OFFER)
    assert (tmp_path / name).is_file()
    (back,) = adapter.read_offer(name)
    assert same_instants(back) == same_instants(OFFER)


def test_the_csv_layout_has_spps_cumulative_mw_pairs_in_gmt(tmp_path):
    adapter = FileAdapter(directory=str(tmp_path), layout="spp-offer-curve-csv")
    name = adapter.submit(OFFER)
    assert name == "offers/ERCOT_day_ahead_20261101T0500Z_1234-v2.csv"
    rows = list(csv.DictReader((tmp_path / name).open()))
    first = rows[0]
    assert (first["Biddate"], first["Bidhour"], first["Unitcode"]) == ("2026-11-01", "06:00", "DER-0001")
    # 300 kW at 45 and 550 more at 120: cumulative 0.3 and 0.85 MW.
    assert (first["MW1"], first["Price1"], first["MW2"], first["Price2"], first["MW3"]) == (
        "0.3",
        "45.00",
        "0.85",
        "120.00",
        "",
    )
    assert list(first)[-20:] == [f"MW{n}" for n in range(1, 11)] + [f"Price{n}" for n in range(1, 11)]


def test_the_xml_layout_follows_ercots_energy_only_offer_with_the_markets_offset(tmp_path):
    adapter = FileAdapter(directory=str(tmp_path), layout="ercot-ews-offer-xml", market_time_zone="America/Chicago")
    root = ET.parse(tmp_path / adapter.submit(OFFER)).getroot()
    ns = {"e": "http://www.ercot.com/schema/2007-06/nodal/ews"}
    assert root.tag == "{http://www.ercot.com/schema/2007-06/nodal/ews}BidSet"
    assert root.findtext("e:tradingDate", namespaces=ns) == "2026-11-01"
    offers = root.findall("e:EnergyOnlyOffer", ns)
    # The repeated hour: 01:00 CDT then 01:00 CST.
    assert [o.findtext("e:startTime", namespaces=ns) for o in offers] == [
        "2026-11-01T01:00:00-05:00",
        "2026-11-01T01:00:00-06:00",
    ]
    points = offers[0].findall("e:EnergyOfferCurve/e:CurveData", ns)
    assert [(p.findtext("e:xvalue", namespaces=ns), p.findtext("e:y1value", namespaces=ns)) for p in points] == [
        ("0.3", "45.00"),
        ("0.85", "120.00"),
    ]


def test_a_curve_longer_than_the_layout_takes_is_refused():
    offer = {**OFFER, "intervals": [{**OFFER["intervals"][0], "segments": [[1.0, float(p)] for p in range(11)]}]}
    with pytest.raises(adapters.SubmissionFailed):
        FileAdapter(directory="/nonexistent", layout="spp-offer-curve-csv").layout.render_offer(offer)


@pytest.mark.parametrize("layout", ["spp-offer-curve-csv", "ercot-ews-offer-xml"])
def test_awards_are_read_from_the_inbox_and_moved_to_processed(tmp_path, layout):
    adapter = FileAdapter(directory=str(tmp_path), layout=layout, market_time_zone="America/Chicago")
    file_layout = FileLayout(load_layout(layout), "America/Chicago")
    inbox = tmp_path / "awards"
    inbox.mkdir()
    (inbox / file_layout.award_file_name(AWARD)).write_text(file_layout.render_award(AWARD))
    (inbox / "simulator.json").write_text(json.dumps({**AWARD, "award_id": "RT-1"}))
    (inbox / "broken.json").write_text("{not json")
    awards = adapter.fetch_awards()
    # In file-name order: DA-2026-... before simulator.json.
    assert [same_instants(a) for a in awards] == [same_instants(AWARD), same_instants({**AWARD, "award_id": "RT-1"})]
    assert sorted(p.name for p in (tmp_path / "processed").iterdir()) == sorted(
        [file_layout.award_file_name(AWARD), "simulator.json"]
    )
    assert [p.name for p in (tmp_path / "rejected").iterdir()] == ["broken.json"]
    assert list(inbox.iterdir()) == []
    assert adapter.fetch_awards() == []


def test_every_layout_says_what_it_is_based_on_and_where_it_departs():
    assert set(layout_names()) >= {"spp-offer-curve-csv", "ercot-ews-offer-xml"}
    for name in layout_names():
        layout = load_layout(name)
        assert layout["format"] in ("csv", "xml") and layout["based_on"] and layout["departures"]


@pytest.mark.django_db
def test_a_file_connection_gets_the_file_adapter_and_an_unknown_layout_fails_the_submission(tmp_path):
    link = MarketConnection.objects.create(
        market=market("ERCOT"), adapter="file", directory=str(tmp_path), layout="no-such-layout"
    )
    adapter = adapters.for_connection(link)
    assert adapter is not None and adapter.name == "file"
    with pytest.raises(adapters.SubmissionFailed, match="no file layout"):
        adapter.submit(OFFER)

"""Offer rules of the seven seeded markets as data: day-ahead close, real-time offer lead, real-time interval,
offer price floor and cap (and the clock a deadline is stated in, when it is not the market's own).

Every value is an operator-editable default. Where the public material found did not confirm a value, the row
says so in `source` ("not confirmed") and the README's "Market side: offers" lists it; nothing here is a
guess presented as a rule.

- Offer caps: FERC Order 831 caps an incremental energy offer at the higher of $1,000/MWh and its verified
  cost-based offer ($2,000/MWh hard cap for setting prices); a demand-response resource has no verified cost above
  $1,000, so $1,000 is seeded for every FERC market. ERCOT is outside FERC: its high system-wide offer cap (HCAP)
  is $5,000/MWh since 1 January 2022 (PUCT rule 25.505).
- MISO: the operating day is 24 hours of Eastern Standard Time all year, but the day-ahead market closes at
  10:30 Eastern *prevailing* time (MISO help articles KA-01016, KA-01025: "10:30 EPT (0930 CPT)"), hence its row's
  own time zone.
"""

import datetime

import aggregator.reference.models
from django.db import migrations, models

NOT_CONFIRMED = "not confirmed in the public material found; the model default, edit when the tariff is checked"

# code: (real-time interval, floor, cap, price source)
PRICES = {
    "CAISO": (5, -150, 1000, "bid floor -$150 since the 2014 spring release; soft cap $1,000 (Order 831, 2021)"),
    "PJM": (5, -150, 1000, f"cap $1,000 (Order 831); floor {NOT_CONFIRMED}"),
    "NYISO": (5, -1000, 1000, "Services Tariff Att. F 21.4: bid restriction of +/-$1,000/MWh"),
    "ISO-NE": (5, -150, 1000, f"cap $1,000 (Order 831); floor {NOT_CONFIRMED}"),
    "MISO": (5, -500, 1000, f"cap $1,000 (MISO tariff; Order 831); floor {NOT_CONFIRMED}"),
    "ERCOT": (15, -250, 5000, f"HCAP $5,000/MWh from 2022-01-01 (PUCT 25.505); floor {NOT_CONFIRMED}"),
    "SPP": (5, -500, 1000, f"cap $1,000 (Order 831); floor {NOT_CONFIRMED}"),
}

# code: (day-ahead local close, days before, clock (blank: the market's), source;
#        real-time minutes before the operating hour, source)
DEADLINES = {
    "CAISO": (
        datetime.time(10, 0),
        1,
        "",
        (
            "CAISO market processes: the day-ahead market closes the day before the trade date; the 10:00 hour is "
            f"{NOT_CONFIRMED}"
        ),
        75,
        "CAISO BPM Market Operations 2.3.2: RTM bidding closes 75 minutes before the trading hour",
    ),
    "PJM": (
        datetime.time(10, 30),
        1,
        "",
        "PJM Inside Lines, tariff changes effective 2016-04-01: day-ahead offers due at 10:30 a.m. (eastern)",
        65,
        "PJM Inside Lines, intraday offers (2017-11-01): updates up to 65 minutes before the operating hour",
    ),
    "NYISO": (
        datetime.time(5, 0),
        1,
        "",
        "NYISO Services Tariff 4.2.1.1: bids by 5 a.m. on the day prior to the Dispatch Day",
        75,
        f"real-time bids 75 minutes before the dispatch hour: {NOT_CONFIRMED}",
    ),
    "ISO-NE": (
        datetime.time(10, 30),
        1,
        "",
        "ISO-NE: 10:00 close from 2013-05-23, extended by 30 minutes (FERC filing ER20, 2020-07-27)",
        30,
        f"re-offers up to 30 minutes before the operating hour: {NOT_CONFIRMED}",
    ),
    "MISO": (
        datetime.time(10, 30),
        1,
        "America/New_York",
        "MISO help KA-01016/KA-01025: day-ahead closes 10:30 Eastern prevailing time (0930 CPT)",
        30,
        "MISO real-time market page: resource offers 30 minutes prior to the operating hour",
    ),
    "ERCOT": (
        datetime.time(10, 0),
        1,
        "",
        "ERCOT market notice M-A041019-01: DAM submissions validated after 10:00 a.m. in the Day-Ahead",
        60,
        f"offers until the end of the Adjustment Period, an hour before the operating hour: {NOT_CONFIRMED}",
    ),
    "SPP": (
        datetime.time(9, 30),
        1,
        "",
        f"RTO Insider: SPP's day-ahead close moved to 9:30 a.m. CT (Order 809); the effective date is {NOT_CONFIRMED}",
        30,
        f"real-time offers 30 minutes before the operating hour: {NOT_CONFIRMED}",
    ),
}


def seed(apps, schema_editor):
    Market = apps.get_model("aggregator", "Market")
    OfferDeadline = apps.get_model("aggregator", "OfferDeadline")
    for market in Market.objects.filter(code__in=DEADLINES):
        interval, floor, cap, _ = PRICES[market.code]
        market.real_time_interval_minutes = interval
        market.offer_price_floor_per_mwh = floor
        market.offer_price_cap_per_mwh = cap
        market.max_offer_segments = 10
        market.save(
            update_fields=[
                "real_time_interval_minutes",
                "offer_price_floor_per_mwh",
                "offer_price_cap_per_mwh",
                "max_offer_segments",
            ]
        )
        local, days, clock, da_source, minutes, rt_source = DEADLINES[market.code]
        OfferDeadline.objects.update_or_create(
            market=market,
            market_kind="day_ahead",
            day_type="any",
            defaults={
                "local_time": local,
                "days_before": days,
                "minutes_before": None,
                "time_zone": clock,
                "source": da_source[:200],
            },
        )
        OfferDeadline.objects.update_or_create(
            market=market,
            market_kind="real_time",
            day_type="any",
            defaults={
                "local_time": None,
                "days_before": 0,
                "minutes_before": minutes,
                "time_zone": "",
                "source": rt_source[:200],
            },
        )


def unseed(apps, schema_editor):
    apps.get_model("aggregator", "OfferDeadline").objects.filter(market__code__in=DEADLINES, day_type="any").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("aggregator", "0010_der_size_and_utilities"),
    ]

    operations = [
        migrations.AddField(
            model_name="offerdeadline",
            name="time_zone",
            field=models.CharField(
                blank=True,
                help_text="The clock `local_time` is stated in, when not the market's (MISO's day runs on Eastern "
                "Standard Time, its day-ahead market closes at 10:30 Eastern prevailing time).",
                max_length=64,
                validators=[aggregator.reference.models.validate_time_zone],
            ),
        ),
        migrations.RunPython(seed, unseed),
    ]

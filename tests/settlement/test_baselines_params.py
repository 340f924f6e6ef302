"""Method parameters: the published defaults, overrides from a plain dict, refusals by name."""

import dataclasses

import pytest

from settlement.baselines import METHODS, BaselineError, get_method, make_params
from settlement.baselines.params import (
    Caiso10in10Params,
    CaisoMgoParams,
    CaltrackParams,
    ErcotMatchingDayPairParams,
    ErcotMiddle8of10Params,
    IsoNeParams,
    MatchDayParams,
    MeterBeforeMeterAfterParams,
    MeteredOutputParams,
    NyisoCblParams,
    PjmHigh4of5Params,
)


def refusal(cls, settings) -> tuple[str, str]:
    with pytest.raises(BaselineError) as refused:
        cls.from_settings(settings)
    return refused.value.code, refused.value.problems[0].field


def test_pjm_defaults_are_high_4_of_5_in_45_days_with_an_uncapped_saa():
    p = PjmHigh4of5Params()
    assert (p.lookback_days, p.weekday_candidate_days, p.weekday_keep_highest) == (45, 5, 4)
    assert (p.weekend_candidate_days, p.weekend_keep_highest, p.weekend_like_days) == (3, 2, "saturday_apart")
    assert (p.low_usage_threshold, p.low_usage_basis) == (0.25, "mean_of_chosen")
    assert (p.adjustment, p.adjustment_window_minutes, p.adjustment_gap_minutes, p.adjustment_cap) == (
        "additive",
        180,
        60,
        None,
    )
    # PJM's published adjustment has no floor: a program that floors says so in its parameters.
    assert p.floor_at_zero is False and p.interval_minutes is None


def test_caiso_defaults_are_10_in_10_and_4_in_4_with_a_twenty_percent_cap():
    p = Caiso10in10Params()
    assert (p.weekday_candidate_days, p.weekday_keep_highest, p.weekend_candidate_days, p.weekend_keep_highest) == (
        10,
        10,
        4,
        4,
    )
    assert (p.weekend_like_days, p.low_usage_threshold) == ("together", None)
    assert (p.adjustment, p.adjustment_window_minutes, p.adjustment_gap_minutes, p.adjustment_cap) == (
        "multiplicative",
        180,
        60,
        0.2,
    )


def test_nyiso_defaults_are_5_of_10_in_30_days_with_a_window_from_4_to_2_hours_before():
    p = NyisoCblParams()
    assert (p.lookback_days, p.weekday_candidate_days, p.weekday_keep_highest) == (30, 10, 5)
    assert (p.weekend_candidate_days, p.weekend_keep_highest) == (3, 2)
    assert (p.low_usage_threshold, p.low_usage_basis) == (0.25, "peak_of_window")
    assert (p.adjustment, p.adjustment_window_minutes, p.adjustment_gap_minutes, p.adjustment_cap) == (
        "multiplicative",
        120,
        120,
        0.2,
    )


def test_pre_event_defaults():
    assert (MeterBeforeMeterAfterParams().window_minutes, MeterBeforeMeterAfterParams().gap_minutes) == (None, 0)
    m = MeteredOutputParams()
    assert (m.baseline_rule, m.window_minutes, m.credit_stopped_charging, m.floor_at_zero) == (
        "pre_event",
        60,
        True,
        False,
    )


def test_a_programs_settings_override_the_defaults():
    p = Caiso10in10Params.from_settings({"adjustment_cap": 0.4, "lookback_days": 40, "interval_minutes": 15})
    assert (p.adjustment_cap, p.lookback_days, p.interval_minutes) == (0.4, 40, 15)
    assert p.weekday_candidate_days == 10
    assert PjmHigh4of5Params.from_settings(None) == PjmHigh4of5Params()


def test_an_unknown_key_is_refused_by_name():
    assert refusal(PjmHigh4of5Params, {"lookback": 30}) == ("unknown_param", "lookback")


@pytest.mark.parametrize(
    "key, value",
    [
        ("lookback_days", "45"),  # a string
        ("lookback_days", 45.5),
        ("lookback_days", True),  # a bool is not a number of days
        ("lookback_days", 0),
        ("low_usage_threshold", 1.5),
        ("low_usage_threshold", float("nan")),
        ("adjustment_cap", -0.1),
        ("adjustment", "ratio"),
        ("weekend_like_days", "sunday"),
        ("floor_at_zero", "yes"),
        ("adjustment_window_minutes", 7),  # not a multiple of 5
        ("interval_minutes", 30),
        ("weekday_candidate_days", None),
    ],
)
def test_a_bad_value_is_refused_naming_its_key(key, value):
    assert refusal(PjmHigh4of5Params, {key: value}) == ("invalid_param", key)


def test_nullable_parameters_accept_none():
    p = PjmHigh4of5Params.from_settings({"low_usage_threshold": None, "adjustment_cap": None})
    assert p.low_usage_threshold is None


def test_keeping_more_days_than_the_pool_holds_is_refused():
    assert refusal(PjmHigh4of5Params, {"weekday_keep_highest": 6}) == ("invalid_param", "weekday_keep_highest")
    assert refusal(NyisoCblParams, {"weekend_min_days": 4}) == ("invalid_param", "weekend_min_days")


def test_an_adjustment_needs_a_window():
    assert refusal(PjmHigh4of5Params, {"adjustment_window_minutes": 0}) == (
        "invalid_param",
        "adjustment_window_minutes",
    )
    assert PjmHigh4of5Params.from_settings({"adjustment": "none", "adjustment_window_minutes": 0}).adjustment == "none"


def test_settings_must_be_a_mapping():
    assert refusal(PjmHigh4of5Params, [("lookback_days", 30)]) == ("invalid_param", "params")


def test_params_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        PjmHigh4of5Params().lookback_days = 10


def test_a_methods_params_must_be_its_own_class():
    with pytest.raises(BaselineError) as refused:
        make_params(get_method("pjm-high-4-of-5"), Caiso10in10Params())
    assert refused.value.code == "invalid_param"


def test_every_method_code_builds_its_params_from_an_empty_dict():
    assert {code: type(make_params(m, {})) for code, m in METHODS.items()} == {
        "pjm-high-4-of-5": PjmHigh4of5Params,
        "caiso-10-in-10": Caiso10in10Params,
        "nyiso-cbl": NyisoCblParams,
        "isone-10-day": IsoNeParams,
        "ercot-middle-8-of-10": ErcotMiddle8of10Params,
        "caiso-mgo": CaisoMgoParams,
        "pjm-match-day": MatchDayParams,
        "ercot-matching-day-pair": ErcotMatchingDayPairParams,
        "caltrack-hourly": CaltrackParams,
        "meter-before-meter-after": MeterBeforeMeterAfterParams,
        "metered-output": MeteredOutputParams,
    }


def test_an_unknown_method_is_refused():
    with pytest.raises(BaselineError) as refused:
        get_method("regression")
    assert refused.value.code == "unknown_method"

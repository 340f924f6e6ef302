"""The flexibility forecast of a virtual resource, learned from the fleet's own data.

What it predicts: per interval, the kW the resource could hold if dispatched in that interval — reduction for
load-type members, discharge for batteries, output for generators — each device derated by its delivery ratio
in past events (DevicePerformance; 1 where unknown). Hourly for the 48 hours from the top of the current UTC hour,
and in the market's real-time interval (5 or 15 minutes) for the 2 hours from the interval containing now.
Expected kW and P10/P50/P90, never negative, P10 <= P50 <= P90.

By member:
- Load-type members (thermostats / HVAC, water heaters, EV chargers, controllable loads) can shed the load they
  would draw, which their device readings show: that is the learned part, and what the backtest scores. Per
  resource and device type a group's history is its hourly load factor (kWh read / rated kWh the readings cover,
  from the rollup in `rollup`), so members joining, leaving or missing readings do not bend it; a forecast load
  factor becomes kW through the group's current members' rated kW x delivery ratio, less those that cannot be
  dispatched in that hour (opted out, silent for a day, offline or islanded now).
  - thermostats, water heaters, controllable loads: a ridge fit on local hour x day type (weekday; weekend or
    market holiday), cooling and heating degree hours by 6-hour block (base 65 °F), and month terms once two
    months have two weeks of history each (core.fit_load). Temperature: the members' weather stations (a site
    without one, or whose station has no data, uses its zone's series, kept under "<MARKET>:<ZONE>" and fed by
    CSV imports and by heartbeats' `outdoor_temperature_f`), weighted by member count. Forecast hours use the
    stored temperatures (an imported forecast) and, where none, the same hour of the latest day with one. No
    temperature at all: the fit has no temperature terms, and `inputs` says so.
  - EV chargers: per charger, the probability of charging at each hour of the week (site time, shrunk towards
    the charger's overall share) x its mean kW while charging, from its readings (ChargerProfile); chargers with
    less than a week observed take the capability model's charging share. A resource whose chargers have no
    profile yet is fitted like the other loads.
  - a group with under three days of readings is forecast by the capability model, and `inputs` notes it.
- Batteries: the discharge headroom along their own plan (dispatch.DeviceSchedule): the plan's state of energy
  at the start of each hour above its reserve, through the discharge efficiency, over the program's typical
  event hours, capped at rated kW. Without a plan covering the hour: the capability model.
- Generators and CHP: the capability model; solar: nothing.

Quantiles come from the residuals of the load fits over the history hours, summed over the resource's groups hour
by hour (correlation between groups is kept), as empirical P10/P50/P90 offsets per local 6-hour block, inflated
for in-sample optimism and scaled by the share of the load that can be dispatched in the hour. Batteries and
generators add to every quantile alike.

Real-time: the hourly learned model at each interval, moved by the departure of what fresh heartbeats
(DeviceStatus.power_kw, at most 15 minutes old) measure now from what the model says for now; members not
reporting count at the model's value. The departure's weight fades as exp(-minutes ahead / 30) (0.92 at the first
5-minute interval's middle, 0.14 an hour out, 0.02 at two hours), and the band widens from half the hourly band to
all of it as it fades.

Baselines to beat, stored beside the learned forecast: persistence (hourly: each load group's load factor at the
same local hour of the latest day with data before the issue, two days back beyond 24 hours ahead; batteries and
generators from the capability model with their current state; real-time: the last measured value held) and the
nameplate capability model (`capability_of`). `manage.py backtest_forecast` scores all three.
"""

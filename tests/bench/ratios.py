"""Each benchmark's figure as a share of the bare limit of what it does, measured in the same run.

Absolute figures on a shared machine move with whatever else runs on it; a figure and its bare limit measured
a minute apart on the same data and server move together, so their ratio is what a run can be judged by.
A module appends `Ratio`s to its RATIOS list; tests/bench/run.py prints them all in one closing table.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Ratio:
    figure: str  # what the platform did, e.g. "ingestion (readings/s)"
    measured: float
    bare: float  # the bare operation it is built on, same data, same server, same run
    unit: str
    higher_is_better: bool = True  # a rate; False for a duration
    target: float | None = None  # the least ratio that meets it; None: reported, no target

    @property
    def ratio(self) -> float:
        """How close to the bare limit: measured/bare for a rate, bare/measured for a duration (1.0: at the limit)."""
        top, bottom = (self.measured, self.bare) if self.higher_is_better else (self.bare, self.measured)
        return top / bottom if bottom else float("nan")

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.ratio >= self.target


def _number(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value:.3f} s" if value < 10 else f"{value:.1f} s"
    if unit == "ms":
        return f"{value:.1f} ms"
    return f"{value:,.0f} {unit}"


def table(ratios: list[Ratio]) -> list[str]:
    header = ("figure", "measured", "bare limit", "ratio", "target", "met")
    rows = [
        (
            r.figure,
            _number(r.measured, r.unit),
            _number(r.bare, r.unit),
            (f"{r.ratio:.0%}" if r.ratio >= 0.1 else f"{r.ratio:.1%}") if r.ratio == r.ratio else "n/a",
            f">= {r.target:.0%}" if r.target is not None else "-",
            {True: "yes", False: "NO", None: "-"}[r.met],
        )
        for r in ratios
    ]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    return [line.format(*header), line.format(*("-" * w for w in widths)), *(line.format(*row) for row in rows)]

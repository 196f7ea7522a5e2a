"""Claims: the assertions at the end of every chapter that the effect its prose describes really happened.

Introduced in the preface. A claim names a measured value, a threshold and a comparison::

    claims = Claims("ch2_1", settings)
    claims.check("accuracy at k=64", acc64, ">=", 0.9)
    claims.finish()

Each claim is recorded (for the status page and for glue), and a failing one raises an ``AssertionError``
naming the claim, its value and its threshold, so the notebook — and CI — stop there.
"""

from __future__ import annotations

import json
import operator
import os
import resource
import sys
from dataclasses import asdict, dataclass

import pandas as pd

from .files import atomic_write_text
from .report import glue
from .runtime import Device

COMPARISONS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}

#: Environment variable naming the JSON file a chapter's claims and run facts are written to (set by the build).
RECORD_ENV = "HALLUC_RECORD"


@dataclass(frozen=True)
class Claim:
    """One asserted finding: its name, the measured value, the comparison and threshold, and whether it held."""

    name: str
    value: float
    comparison: str
    threshold: float
    passed: bool


def check_claim(name: str, value: float, comparison: str, threshold: float) -> Claim:
    """Evaluate one claim; raise ``AssertionError`` with the claim, value and threshold if it fails."""
    if comparison not in COMPARISONS:
        raise ValueError(f"comparison must be one of {tuple(COMPARISONS)}; got {comparison!r}")
    if not isinstance(name, str) or not name:
        raise ValueError("name must be a non-empty string")
    value, threshold = float(value), float(threshold)
    passed = bool(COMPARISONS[comparison](value, threshold))
    claim = Claim(name, value, comparison, threshold, passed)
    if not passed:
        raise AssertionError(f"claim failed: {name}: measured {value:.4g}, expected {comparison} {threshold:.4g}")
    return claim


def peak_memory_mib() -> float:
    """Peak resident memory of this process so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


class Claims:
    """The claims of one chapter run, with the run's settings, for the status page."""

    def __init__(self, page: str, settings=None, *, ran_on: Device | None = None):
        """``settings`` are the run's (:func:`~halluc_lib.core.runtime.setup`); ``ran_on`` names the device that
        actually ran the experiment when a page deliberately uses another than the one asked for (chapter 3.1
        computes on the CPU), so the record says both."""
        self.page = page
        self.settings = settings
        self.ran_on = ran_on
        self.claims: list[Claim] = []

    def check(self, name: str, value: float, comparison: str, threshold: float) -> Claim:
        """Check and record a claim; it is also glued as ``claim:<name>`` for the prose to quote."""
        claim = check_claim(name, value, comparison, threshold)
        self.claims.append(claim)
        glue(f"claim:{name}", claim.value)
        return claim

    def table(self) -> pd.DataFrame:
        """The claims checked so far, one row each."""
        return pd.DataFrame([asdict(c) for c in self.claims], columns=list(Claim.__dataclass_fields__))

    def record(self) -> dict:
        """What the status page shows for this run: settings, time, memory and every claim."""
        s = self.settings
        return {
            "page": self.page,
            "seed": getattr(s, "seed", None),
            "scale": getattr(s, "scale", None),
            "device": str(getattr(s, "device", "")) or None,
            "ran_on": str(self.ran_on if self.ran_on is not None else getattr(s, "device", "")) or None,
            "threads": getattr(s, "threads", None),
            "version": getattr(s, "version", None),
            "seconds": s.elapsed() if s is not None else None,
            "peak_memory_mib": peak_memory_mib(),
            "claims": [asdict(c) for c in self.claims],
        }

    def finish(self) -> pd.DataFrame:
        """Write the record where ``$HALLUC_RECORD`` says (if set) and return the claims as a table."""
        path = os.environ.get(RECORD_ENV)
        if path:
            atomic_write_text(path, json.dumps(self.record(), indent=1))
        return self.table()

"""Claims: the assertions at the end of every chapter that the effect its prose describes really happened.

Introduced in the preface. A claim names a measured value, a comparison, a threshold, and the value the
page's *null model* gives for the same quantity — the model without the mitigation, an untrained model,
unconstrained decoding, the source's formula — computed in the same run::

    claims = Claims("ch2_1", settings)
    claims.check("accuracy at k=64", acc64, ">=", 0.9, baseline=acc64_untrained)
    claims.finish()

A claim must fail for its null: if the baseline passes too, the claim shows nothing and ``check`` raises.
A check of mathematics (an inequality that holds by a theorem) has no null; :meth:`Claims.check_math` records
it as such. Values the prose quotes that are not claims are recorded with :meth:`Claims.measure`, so that the
seed sweep (:mod:`halluc_lib.core.sweeps`) can report their spread.

Each claim is recorded (for the status and robustness pages and for glue), and a failing one raises an
``AssertionError`` naming the claim, its value and its threshold, so the notebook — and CI — stop there. The
record is written before raising, so a sweep keeps the failures too.
"""

from __future__ import annotations

import json
import operator
import os
import platform
import resource
import sys
from dataclasses import asdict, dataclass
from importlib import metadata

import pandas as pd
import torch

from . import sweeps
from .files import atomic_write_text
from .report import glue
from .runtime import Device, cpu_has_native_bf16

COMPARISONS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}

#: Environment variable naming the JSON file a chapter's claims and run facts are written to (set by the build).
RECORD_ENV = "HALLUC_RECORD"

#: The packages whose versions every record stores: what differs between two readers' runs besides hardware.
RECORDED_PACKAGES = ("torch", "transformers", "tokenizers", "numpy", "scikit-learn", "datasketch")

#: Kinds of check: a finding about the experiment (must fail for its null) or a check of mathematics.
KINDS = ("finding", "mathematics")


@dataclass(frozen=True)
class Claim:
    """One asserted finding: its name, the measured value, the comparison and threshold, whether it held, and
    the null model's value (``baseline``; ``None`` for a check of mathematics)."""

    name: str
    value: float
    comparison: str
    threshold: float
    passed: bool
    baseline: float | None = None
    kind: str = "finding"


def holds(value: float, comparison: str, threshold: float) -> bool:
    """Whether ``value <comparison> threshold``; the comparison must be one of :data:`COMPARISONS`."""
    if comparison not in COMPARISONS:
        raise ValueError(f"comparison must be one of {tuple(COMPARISONS)}; got {comparison!r}")
    return bool(COMPARISONS[comparison](float(value), float(threshold)))


def evaluate_claim(
    name: str, value: float, comparison: str, threshold: float, baseline: float | None = None, kind: str = "finding"
) -> Claim:
    """The claim with ``passed`` filled in, without raising. A finding needs a baseline; a check of mathematics
    has none."""
    if not isinstance(name, str) or not name:
        raise ValueError("name must be a non-empty string")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}; got {kind!r}")
    if kind == "finding" and baseline is None:
        raise ValueError(f"claim {name!r}: baseline (the null model's value) is required for a finding")
    if kind == "mathematics" and baseline is not None:
        raise ValueError(f"claim {name!r}: a check of mathematics has no baseline")
    passed = holds(value, comparison, threshold)
    base = None if baseline is None else float(baseline)
    return Claim(name, float(value), comparison, float(threshold), passed, base, kind)


def failure_message(claim: Claim) -> str | None:
    """Why a claim fails, or ``None``: the value misses the threshold, or the null model passes it too."""
    if not claim.passed:
        return (
            f"claim failed: {claim.name}: measured {claim.value:.4g}, expected {claim.comparison} {claim.threshold:.4g}"
        )
    if claim.baseline is not None and holds(claim.baseline, claim.comparison, claim.threshold):
        return (
            f"claim shows nothing: {claim.name}: the null model's value {claim.baseline:.4g} also satisfies "
            f"{claim.comparison} {claim.threshold:.4g}"
        )
    return None


def check_claim(
    name: str, value: float, comparison: str, threshold: float, baseline: float | None = None, kind: str = "finding"
) -> Claim:
    """Evaluate one claim; raise ``AssertionError`` if it fails or its baseline passes as well."""
    claim = evaluate_claim(name, value, comparison, threshold, baseline, kind)
    message = failure_message(claim)
    if message:
        raise AssertionError(message)
    return claim


def peak_memory_mib() -> float:
    """Peak resident memory of this process so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def package_versions(packages: tuple[str, ...] = RECORDED_PACKAGES) -> dict[str, str | None]:
    """Installed version of each package (``None`` when it is missing)."""
    versions = {}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def machine() -> dict[str, str]:
    """The processor facts that change floating-point results: architecture and the vector instructions torch
    uses (``AVX512``, ``AVX2``, ``DEFAULT`` …), and whether it has native bf16 (then CPU training runs in bf16
    autocast, :func:`~halluc_lib.core.runtime.autocast_dtype`)."""
    return {
        "machine": platform.machine(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_native_bf16": cpu_has_native_bf16(),
    }


class Claims:
    """The claims of one chapter run, with the run's settings, for the status and robustness pages."""

    def __init__(self, page: str, settings=None, *, ran_on: Device | None = None):
        """``settings`` are the run's (:func:`~halluc_lib.core.runtime.setup`); ``ran_on`` names the device that
        actually ran the experiment when a page deliberately uses another than the one asked for (chapter 3.1
        computes on the CPU), so the record says both."""
        self.page = page
        self.settings = settings
        self.ran_on = ran_on
        self.claims: list[Claim] = []
        self.measurements: dict[str, float] = {}

    def _add(self, claim: Claim) -> Claim:
        self.claims.append(claim)
        message = failure_message(claim)
        if message:
            self._write()  # the sweep keeps failing runs too
            raise AssertionError(message)
        glue(f"claim:{claim.name}", claim.value)
        return claim

    def check(self, name: str, value: float, comparison: str, threshold: float, *, baseline: float) -> Claim:
        """Check and record a finding; ``baseline`` is the null model's value, which must fail the claim.

        The value is also glued as ``claim:<name>`` for the prose to quote."""
        return self._add(evaluate_claim(name, value, comparison, threshold, baseline))

    def check_math(self, name: str, value: float, comparison: str, threshold: float) -> Claim:
        """Check and record a check of mathematics (a theorem's inequality on this run's numbers): it has no null
        model, and the status page labels it so."""
        return self._add(evaluate_claim(name, value, comparison, threshold, kind="mathematics"))

    def measure(self, name: str, value: float) -> float:
        """Record a value the prose quotes (not a claim) so the seed sweep reports its spread; glued as
        ``measure:<name>``."""
        if not isinstance(name, str) or not name:
            raise ValueError("name must be a non-empty string")
        self.measurements[name] = float(value)
        glue(f"measure:{name}", float(value))
        return float(value)

    def table(self) -> pd.DataFrame:
        """The claims checked so far, one row each."""
        return pd.DataFrame([asdict(c) for c in self.claims], columns=list(Claim.__dataclass_fields__))

    def record(self) -> dict:
        """What the status page shows for this run: settings, environment, time, memory and every claim."""
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
            "packages": package_versions(),
            **machine(),
            "claims": [asdict(c) for c in self.claims],
            "measurements": dict(self.measurements),
            # the library code this run used, so a sweep can tell when the record has gone stale
            "library_modules": (modules := sweeps.loaded_library_modules()),
            "library_sha256": sweeps.library_sha256(modules),
        }

    def _write(self) -> None:
        path = os.environ.get(RECORD_ENV)
        if path:
            atomic_write_text(path, json.dumps(self.record(), indent=1))

    def finish(self) -> pd.DataFrame:
        """Write the record where ``$HALLUC_RECORD`` says (if set) and return the claims as a table."""
        self._write()
        return self.table()

"""The trade-off ledger: what each mitigation buys and costs, recorded by the pages that measured it.

Every mitigation page of chapter 4 ends its experiment by recording one :class:`Tradeoff` — the baseline and
the mitigated value of the error it targets, of accuracy and of calibration, the compute ratio measured in
the same run, and what the mitigation needs besides the data. Records are written atomically as JSON next to
the model cache (``$HALLUC_CACHE/tradeoffs/<scale>/seed<seed>``), so a book build collects the numbers of *this*
run, and chapter 4.7 at one seed reads only what the pages measured at that seed: a seed sweep that ran 4.1-4.6
at every seed before 4.7 once gave 4.7 the last seed's numbers at every seed. A page whose record is missing is
executed first.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from .cache import cache_root
from .files import atomic_write_text
from .runtime import check_positive_int, check_scale

#: The pages that record a trade-off, in book order.
PAGES = (
    "ch04_1_balancing",
    "ch04_2_adversarial",
    "ch04_3_prior_knowledge",
    "ch04_4_multitask",
    "ch04_5_preprocessing",
    "ch04_6_abstention",
)


#: The (baseline, mitigated) pair of a quantity a page did not measure.
NOT_MEASURED = (math.nan, math.nan)


@dataclass(frozen=True)
class Tradeoff:
    """One mitigation measured against its baseline on the same data and seed.

    ``error`` is the rate the mitigation targets (hallucination, worst-group error, error under attack,
    extraction); ``accuracy`` is ordinary accuracy on the same task; ``ece`` is the expected calibration error
    (both default to :data:`NOT_MEASURED`). Each is a (baseline, mitigated) pair. ``compute_ratio`` is the mitigated
    run's cost over the baseline's, measured in the same run; ``compute_unit`` says what was measured.
    """

    mitigation: str
    page: str
    task: str
    error_name: str
    error: tuple[float, float]
    compute_ratio: float
    compute_unit: str
    needs: str
    accuracy: tuple[float, float] = NOT_MEASURED
    ece: tuple[float, float] = NOT_MEASURED

    def __post_init__(self):
        if self.page not in PAGES:
            raise ValueError(f"page must be one of {PAGES}; got {self.page!r}")
        for name in ("error", "accuracy", "ece"):
            pair = getattr(self, name)
            if len(pair) != 2:
                raise ValueError(f"{name} must be a (baseline, mitigated) pair; got {pair!r}")
            object.__setattr__(self, name, tuple(float(x) for x in pair))
        if not (self.compute_ratio > 0 and math.isfinite(self.compute_ratio)):
            raise ValueError(f"compute_ratio must be a positive number; got {self.compute_ratio!r}")


def results_dir(*, seed: int, scale: str) -> Path:
    """Where the trade-offs measured at ``seed`` and ``scale`` are written: ``tradeoffs/<scale>/seed<seed>/`` in
    the model cache (see ``cache_root``)."""
    seed = check_positive_int("seed", seed, allow_zero=True)
    return cache_root() / "tradeoffs" / check_scale(scale) / f"seed{seed}"


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text.lower()).strip("_")


def record(tradeoff: Tradeoff, *, seed: int, scale: str) -> Path:
    """Write ``tradeoff``, measured at ``seed`` and ``scale``, atomically to its results folder; returns its path."""
    if not isinstance(tradeoff, Tradeoff):
        raise TypeError(f"tradeoff must be a Tradeoff; got {type(tradeoff).__name__}")
    path = results_dir(seed=seed, scale=scale) / f"{tradeoff.page}__{_slug(tradeoff.mitigation)}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(asdict(tradeoff), indent=1))
    return path


def record_all(tradeoffs: list[Tradeoff], *, seed: int, scale: str) -> list[Path]:
    """Record every trade-off a page measured at ``seed`` and ``scale``; returns their paths."""
    return [record(t, seed=seed, scale=scale) for t in tradeoffs]


def load(*, seed: int, scale: str) -> list[Tradeoff]:
    """Every trade-off recorded at ``seed`` and ``scale``, in book order."""
    found = []
    for path in sorted(results_dir(seed=seed, scale=scale).glob("*.json")):
        data = json.loads(path.read_text())
        found.append(Tradeoff(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}))
    return sorted(found, key=lambda t: (PAGES.index(t.page), t.mitigation))

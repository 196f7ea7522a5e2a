"""What each mitigation buys and costs, collected from the pages that measured it (chapter 4.7).

Every mitigation page of chapter 4 ends its experiment by recording one :class:`Tradeoff` — the baseline and
the mitigated value of the error it targets, of accuracy and of calibration, the compute ratio measured in
the same run, and what the mitigation needs besides the data. Records are written atomically as JSON next to
the model cache (``$HALLUC_CACHE/tradeoffs``), so a book build collects the numbers of *this* run. Chapter 4.7
reads them; a page whose record is missing is executed first.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from .cache import cache_root
from .datafiles import atomic_write_text

#: The pages that record a trade-off, in book order.
PAGES = (
    "ch04_1_balancing",
    "ch04_2_adversarial",
    "ch04_3_prior_knowledge",
    "ch04_4_multitask",
    "ch04_5_preprocessing",
    "ch04_6_abstention",
)


@dataclass(frozen=True)
class Tradeoff:
    """One mitigation measured against its baseline on the same data and seed.

    ``error`` is the rate the mitigation targets (hallucination, worst-group error, error under attack,
    extraction); ``accuracy`` is ordinary accuracy on the same task; ``ece`` is the expected calibration error
    (``nan`` where not measured). Each is a (baseline, mitigated) pair. ``compute_ratio`` is the mitigated
    run's cost over the baseline's, measured in the same run; ``compute_unit`` says what was measured.
    """

    mitigation: str
    page: str
    task: str
    error_name: str
    error: tuple[float, float]
    accuracy: tuple[float, float]
    ece: tuple[float, float]
    compute_ratio: float
    compute_unit: str
    needs: str

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


def results_dir() -> Path:
    return cache_root() / "tradeoffs"


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text.lower()).strip("_")


def record(tradeoff: Tradeoff) -> Path:
    """Write ``tradeoff`` atomically to the results folder; returns its path."""
    if not isinstance(tradeoff, Tradeoff):
        raise TypeError(f"tradeoff must be a Tradeoff; got {type(tradeoff).__name__}")
    path = results_dir() / f"{tradeoff.page}__{_slug(tradeoff.mitigation)}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(asdict(tradeoff), indent=1))
    return path


def load() -> list[Tradeoff]:
    """Every recorded trade-off, in book order."""
    found = []
    for path in sorted(results_dir().glob("*.json")):
        data = json.loads(path.read_text())
        found.append(Tradeoff(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}))
    return sorted(found, key=lambda t: (PAGES.index(t.page), t.mitigation))


def missing_pages(tradeoffs: list[Tradeoff]) -> list[str]:
    return [p for p in PAGES if p not in {t.page for t in tradeoffs}]


def run_pages(pages, book_dir: str | Path = ".", **parameters) -> None:
    """Execute the notebooks ``pages`` (with papermill, one at a time) so that they record their trade-offs."""
    import tempfile

    import papermill

    book_dir = Path(book_dir)
    with tempfile.TemporaryDirectory() as out:
        for page in pages:
            papermill.execute_notebook(
                str(book_dir / f"{page}.ipynb"),
                str(Path(out) / f"{page}.ipynb"),
                parameters=parameters,
                cwd=str(book_dir),
                progress_bar=False,
            )


def section(page: str) -> str:
    """ "ch04_1_balancing" → "4.1"."""
    chapter, number = page.split("_")[:2]
    return f"{int(chapter.removeprefix('ch'))}.{number}"


def table(tradeoffs: list[Tradeoff]) -> pd.DataFrame:
    """One row per mitigation: the targeted error, accuracy and ECE before → after, compute and needs."""
    rows = []
    for t in tradeoffs:
        rows.append(
            {
                "mitigation": t.mitigation,
                "section": section(t.page),
                "task": t.task,
                "targeted error": t.error_name,
                "error before": t.error[0],
                "error after": t.error[1],
                "accuracy before": t.accuracy[0],
                "accuracy after": t.accuracy[1],
                "ECE before": t.ece[0],
                "ECE after": t.ece[1],
                "compute ×": t.compute_ratio,
                "compute measured as": t.compute_unit,
                "needs": t.needs,
            }
        )
    return pd.DataFrame(rows)

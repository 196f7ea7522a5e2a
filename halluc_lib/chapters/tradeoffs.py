"""Chapter 4.7: what each mitigation buys and costs, collected from the pages that measured it.

The mitigation pages of chapter 4 record one :class:`halluc_lib.core.ledger.Tradeoff` each; this page reads them
(executing any page whose record is missing) and lays them side by side.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..core import ledger
from ..core.execute import execute_page
from ..core.ledger import PAGES, Tradeoff
from ..core.runtime import Device, check_scale


def missing_pages(tradeoffs: list[Tradeoff]) -> list[str]:
    """The pages of :data:`~halluc_lib.core.ledger.PAGES` that have recorded no trade-off yet."""
    return [p for p in PAGES if p not in {t.page for t in tradeoffs}]


def run_pages(pages, book_dir: str | Path = ".", **parameters) -> None:
    """Execute the notebooks ``pages`` (with papermill, one at a time) so that they record their trade-offs."""
    book_dir = Path(book_dir)
    with tempfile.TemporaryDirectory() as out:
        for page in pages:
            execute_page(book_dir / f"{page}.ipynb", Path(out) / f"{page}.ipynb", parameters=parameters)


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


@dataclass(frozen=True)
class Config:
    """The scale at which a page whose record is missing is executed, and where the book's pages are."""

    scale: str = "quick"
    book_dir: str = "."

    def __post_init__(self):
        check_scale(self.scale)

    @classmethod
    def for_scale(cls, scale: str = "quick") -> Config:
        """Missing records are measured at ``scale``."""
        return cls(scale=scale)


@dataclass
class Run:
    """Every recorded trade-off, and the table of them; ``executed`` names the pages this run had to execute."""

    recorded: list[Tradeoff]
    table: pd.DataFrame
    executed: list[str]


def run(config: Config, *, seed: int = 0, device: Device = "auto", progress: bool = True) -> Run:
    """Read what the trade-off ledger of this build holds for ``seed`` at ``config.scale``; a page whose record is
    missing is executed first (papermill, at ``config.scale``, ``seed`` and ``device``), so the page also works run
    alone."""
    if not isinstance(config, Config):
        raise TypeError(f"config must be a tradeoffs.Config; got {type(config).__name__}")
    recorded = ledger.load(seed=seed, scale=config.scale)
    missing = missing_pages(recorded)
    if missing:
        run_pages(missing, config.book_dir, seed=seed, scale=config.scale, device=str(device))
        recorded = ledger.load(seed=seed, scale=config.scale)
    return Run(recorded, table(recorded), missing)

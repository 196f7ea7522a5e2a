"""The teaching syllabus as data: a four-week module of eight 90-minute classes, each a list of the book's pages.

:data:`SESSIONS` is the one place that says which pages each class covers. ``book/syllabus.md`` describes each
class under a heading ``### Class N: <title>`` with the same number and title, and links exactly the same pages;
the table that replaces its marker ``<!-- syllabus-times -->`` is rendered from :data:`SESSIONS` and the committed
seed sweep (``data/sweeps/<page>.json``) when the book is staged (``halluc_lib.tools.build.stage``), so the page
and its table cannot disagree and no run time is typed. A class's in-class run time is the sum, over its pages,
of each page's median wall time over the sweep's quick-scale CPU runs.

Pages are listed by notebook stem, in the order a class runs them. The order of the classes keeps every page
after the pages whose trained models or records it reuses (chapter 1's model for 2.1, 3.3, 3.5 and 4.6; 2.1's
for 4.3; the other pages of chapter 4 for 4.7; 5.1's for 6.3), as the sweep ran them, so the times hold when the
classes are taught in order on one machine.

This module imports no torch (``build`` does, through the claims module), so its tests stay fast.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..core import sweeps
from ..core.files import atomic_write_text
from ..core.findings import checks_claims
from ..core.sweeps import SWEEP_DIR

ROOT = Path(__file__).resolve().parents[2]
SYLLABUS_MARKER = "<!-- syllabus-times -->"
#: The runs a class's time is read from: the scale and device a classroom laptop runs.
SCALE = "quick"
DEVICE = "cpu"


@dataclass(frozen=True)
class Session:
    """One 90-minute class: its number (1–8), its week (1–4), its title and its pages (notebook stems, in the
    order the class runs them)."""

    number: int
    week: int
    title: str
    pages: tuple[str, ...]


SESSIONS: tuple[Session, ...] = (
    Session(
        number=1,
        week=1,
        title="What a hallucination is, and exposure",
        pages=("ch01_concepts", "ch02_1_exposure", "ch02_5_duplicates"),
    ),
    Session(
        number=2,
        week=1,
        title="What pretraining optimises, and what confidence means",
        pages=("ch03_1_objectives", "ch03_3_calibration"),
    ),
    Session(
        number=3,
        week=2,
        title="Facts seen once: the hallucination floor",
        pages=("ch02_2_monofacts", "ch03_4_good_turing", "ch03_5_validity"),
    ),
    Session(
        number=4,
        week=2,
        title="Misleading signals: shortcuts and rare domains",
        pages=("ch02_3_shortcuts", "ch02_4_imbalance", "ch04_2_adversarial", "ch05_4_vision"),
    ),
    Session(
        number=5,
        week=3,
        title="Memory against context",
        pages=("ch02_6_conflicts", "ch04_3_prior_knowledge", "ch05_2_medicine"),
    ),
    Session(
        number=6,
        week=3,
        title="Changing the training data",
        pages=("ch04_1_balancing", "ch04_5_preprocessing", "ch05_3_recommender"),
    ),
    Session(
        number=7,
        week=4,
        title="Answering, abstaining, and the bill",
        pages=("ch04_4_multitask", "ch04_6_abstention", "ch04_7_tradeoffs"),
    ),
    Session(
        number=8,
        week=4,
        title="The worked project: from a rare domain to a real model",
        pages=(
            "ch05_1_finance",
            "ch06_1_setup",
            "ch06_2_corrected_script",
            "ch06_3_what_pretraining_buys",
            "ch06_4_experiment_tracking",
            "ch07_summary",
            "ch08_faq",
        ),
    ),
)


def page_number(page: str) -> str:
    """A page's section number from its stem: ``ch02_1_exposure`` → ``2.1``, ``ch01_concepts`` → ``1``."""
    match = re.fullmatch(r"ch(\d+)(?:_(\d+))?_[a-z]\w*", page)
    if not match:
        raise ValueError(f"{page!r} is not a chapter page (chNN[_M]_<slug>)")
    chapter, section = match.groups()
    return str(int(chapter)) if section is None else f"{int(chapter)}.{int(section)}"


def is_notebook(page: str, root: Path = ROOT) -> bool:
    """Whether the page runs an experiment in class — a notebook that checks claims — rather than a page that is
    read: a Markdown page, or a notebook that only quotes other pages' records (the summary, the FAQ)."""
    notebook = Path(root) / "book" / f"{page}.ipynb"
    return notebook.exists() and checks_claims(notebook)


def median_seconds(page: str, sweep_dir: Path = SWEEP_DIR) -> float | None:
    """The median wall time of the page's quick-scale CPU runs in the sweep; ``None`` when it has none."""
    page_runs = sweeps.runs(page, SCALE, DEVICE, sweep_dir)
    if not page_runs:
        return None
    return sweeps.spread([r["wall_seconds"] for r in page_runs])["median"]


def session_seconds(session: Session, sweep_dir: Path = SWEEP_DIR, root: Path = ROOT) -> tuple[float, list[str]]:
    """A class's in-class run time — the sum of its notebooks' median wall times — and the notebooks among its
    pages that have no run to take a time from yet."""
    total, missing = 0.0, []
    for page in session.pages:
        if not is_notebook(page, root):
            continue
        seconds = median_seconds(page, sweep_dir)
        if seconds is None:
            missing.append(page)
        else:
            total += seconds
    return total, missing


def _page_cell(page: str, sweep_dir: Path, root: Path) -> str:
    link = f"{{doc}}`{page_number(page)} <{page}>`"
    if not is_notebook(page, root):
        return f"{link} (read; nothing to run)"
    seconds = median_seconds(page, sweep_dir)
    return f"{link} (not swept yet)" if seconds is None else f"{link} ({seconds:.0f} s)"


def _total_cell(total: float, missing: list[str]) -> str:
    return f"{total:.0f} s" + (f" + {len(missing)} page(s) not swept yet" if missing else "")


def syllabus_markdown(sweep_dir: Path = SWEEP_DIR, root: Path = ROOT, sessions: tuple[Session, ...] = SESSIONS) -> str:
    """The syllabus page's table: per class, its pages with each one's median quick-scale CPU wall time from the
    sweep, and their sum, the class's in-class run time; a last row sums the module."""
    lines = [
        "| class | week | pages (median run time of each) | in-class run time |",
        "|---|---|---|---|",
    ]
    module_total, module_missing = 0.0, []
    for s in sessions:
        total, missing = session_seconds(s, sweep_dir, root)
        module_total += total
        module_missing += missing
        cells = ", ".join(_page_cell(page, sweep_dir, root) for page in s.pages)
        lines.append(f"| {s.number}. {s.title} | {s.week} | {cells} | {_total_cell(total, missing)} |")
    lines.append(f"| all classes | | | {_total_cell(module_total, module_missing)} |")
    return "\n".join(lines) + "\n"


def fill_page(page: Path, sweep_dir: Path = SWEEP_DIR, root: Path = ROOT) -> None:
    """Replace the marker in ``page`` (the staged copy of ``book/syllabus.md``) by :func:`syllabus_markdown`.

    A page without the marker, or with it twice, is an error: the table would silently be missing or doubled."""
    page = Path(page)
    text = page.read_text()
    count = text.count(SYLLABUS_MARKER)
    if count != 1:
        raise ValueError(f"{page} must hold the marker {SYLLABUS_MARKER} exactly once; it holds it {count} times")
    atomic_write_text(page, text.replace(SYLLABUS_MARKER, syllabus_markdown(sweep_dir, root)))

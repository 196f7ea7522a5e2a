"""Chapter 8, frequently asked questions: the source's five questions and three more, each answered with what the
book measured — read from the committed seed sweep — and with what it did not measure.

The source asks five questions and answers three of them with the same list, word for word.
:data:`SOURCE_QUESTIONS` records each question, the gist of the answer it got and what it actually asks, so that
the page can show the repetition. :func:`run` also reads what the committed sweep covers — which pages, at which
scales and on which devices — because an honest answer to "does a bigger model fix it?" starts there. Nothing
here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..core import findings
from ..core.sweeps import SWEEP_DIR

#: The source's answer to three of its five questions.
FIVE_REMEDIES = "balance the data, adversarial training, prior knowledge, multi-task learning, preprocessing"


@dataclass(frozen=True)
class SourceQuestion:
    """One of the source's questions (translated), the gist of the answer the source gives, and what the
    question asks once it is taken on its own terms."""

    question: str
    source_answer: str
    asks: str


#: The source's five questions, in its order.
SOURCE_QUESTIONS = (
    SourceQuestion(
        "How can hallucination from pretraining data be avoided?",
        FIVE_REMEDIES,
        "what to change in the data and the training, before a model exists",
    ),
    SourceQuestion(
        "What effects does it have?",
        "the model learns the data's statistics instead of the task's features, and fails when they change",
        "what goes wrong inside the model, and where",
    ),
    SourceQuestion(
        "How should it be handled?",
        FIVE_REMEDIES,
        "what to do with a model that has been trained already",
    ),
    SourceQuestion(
        "What impact does it have in real applications?",
        "lower performance, weak generalisation, poor interpretability",
        "what it costs where models are used, and why it goes unnoticed",
    ),
    SourceQuestion(
        "How can it be solved?",
        FIVE_REMEDIES,
        "whether it can be removed at all, and what each remedy costs",
    ),
)


def source_table(questions=SOURCE_QUESTIONS) -> pd.DataFrame:
    """The source's questions side by side: its answer, which earlier question got the same answer word for word
    (empty when none did), and what the question asks."""
    rows = []
    for i, q in enumerate(questions, start=1):
        same = [j for j, earlier in enumerate(questions[: i - 1], start=1) if earlier.source_answer == q.source_answer]
        rows.append(
            {
                "question": q.question,
                "the source's answer": q.source_answer,
                "same answer as question": same[0] if same else None,
                "what it asks": q.asks,
            }
        )
    table = pd.DataFrame(rows)
    table.index = pd.RangeIndex(1, len(rows) + 1, name="source's question")
    table["same answer as question"] = table["same answer as question"].astype("Int64")
    return table


def swept_at(coverage: pd.DataFrame, scale: str) -> list[str]:
    """The pages of a :func:`~halluc_lib.core.findings.coverage` table that hold any run at ``scale``."""
    columns = [c for c in coverage.columns if c.startswith(f"{findings.check_scale(scale)} on ")]
    return [page for page in coverage.index if coverage.loc[page, columns].sum() > 0]


@dataclass(frozen=True)
class Config:
    """Where the book's notebooks and sweep files are, and which of the sweep's runs the answers quote.

    The quoted runs are always the committed quick-scale runs on a CPU, whatever scale the page is run at: every
    page has them, so the answers do not depend on the reader's machine.
    """

    book_dir: str = "."
    sweep_dir: str | None = None  # None: the committed sweep, data/sweeps/
    sweep_scale: str = "quick"
    sweep_device: str = "cpu"

    def __post_init__(self):
        findings.check_scale(self.sweep_scale)

    @property
    def sweeps(self) -> Path:
        """The folder of the sweep files read: ``sweep_dir``, or the committed sweep."""
        return Path(self.sweep_dir) if self.sweep_dir else SWEEP_DIR

    @classmethod
    def for_scale(cls, scale: str = "quick") -> Config:
        """The same configuration at both scales: the page quotes the committed quick-scale sweep."""
        findings.check_scale(scale)
        return cls()


@dataclass
class Run:
    """The pages that run an experiment, how many runs the sweep holds for each at each scale and device kind
    (``coverage``), and the source's questions (:func:`source_table`)."""

    pages: list[str]
    coverage: pd.DataFrame
    questions: pd.DataFrame


def run(config: Config, *, seed: int = 0, device: str = "auto", progress: bool = True) -> Run:
    """Read what the committed sweep covers and lay out the source's questions. ``seed``, ``device`` and
    ``progress`` are accepted for the one experiment API and change nothing: reading files needs neither."""
    if not isinstance(config, Config):
        raise TypeError(f"config must be a faq.Config; got {type(config).__name__}")
    pages = [nb.stem for nb in findings.chapter_notebooks(config.book_dir)]
    if not pages:
        raise FileNotFoundError(f"no chapter notebooks in {Path(config.book_dir).resolve()}: run the page from book/")
    return Run(pages, findings.coverage(pages, config.sweeps), source_table())

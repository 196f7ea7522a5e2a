"""Chapter 7, summary and outlook: what the book's experiments showed, read back from the committed seed sweep.

The page runs no experiment. Its :func:`run` reads, for every page that runs one, that page's sweep file (how
many claims it checked, at how many seeds, and whether every run passed) and its Key takeaways; the numbers the
prose quotes are glued one by one with :func:`halluc_lib.core.findings.glue_finding`. Nothing here imports
torch.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..core import findings
from ..core.sweeps import SWEEP_DIR

#: A MyST role in prose: its name in braces, then its content between backticks.
ROLE = re.compile(r"\{(?P<role>[\w:-]+)\}`(?P<content>[^`]*)`")
#: A glue name the sweep defines for every page: ``sweep_<measure>_<min|median|max>`` or ``sweep_seeds``.
SWEEP_GLUE = re.compile(r"sweep_(?P<measure>\w+)_(?P<stat>min|median|max)")


@dataclass(frozen=True)
class Config:
    """Where the book's notebooks and sweep files are, and which of the sweep's runs are read.

    The quoted runs are always the committed quick-scale runs on a CPU: every page has them, so what this page
    says does not depend on the machine it is run on.
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
    """The pages that run an experiment (reading order), the scoreboard of their sweeps (one row per page:
    claims, measures, seeds, whether every run passed) and each page's Key takeaways."""

    pages: list[str]
    scoreboard: pd.DataFrame
    takeaways: dict[str, list[str]]


def page_title(notebook: Path) -> str:
    """A page's title: the text of its first ``# `` heading (e.g. ``2.2 Facts seen once must be hallucinated``)."""
    for cell in json.loads(Path(notebook).read_text())["cells"]:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return Path(notebook).stem


def plain(text: str, page: str, config: Config | None = None) -> str:
    """A takeaway as plain Markdown, for display outside its page: a cross-reference keeps its text, a
    citation is dropped, and a sweep's glue (``sweep_<measure>_<stat>``, ``sweep_seeds``) is read from the
    page's sweep file. Any other glue belongs to the page's own run, which this page does not have: that is
    an error naming the page."""
    config = config or Config()

    def replace(match: re.Match) -> str:
        role, content = match["role"], match["content"]
        if role == "cite":
            return ""
        if role.startswith("glue"):
            name, _, spec = content.partition(":")
            where = {"scale": config.sweep_scale, "device": config.sweep_device, "sweep_dir": config.sweeps}
            if name == "sweep_seeds":
                return format(len(findings.page_runs(page, **where)), spec)
            sweep = SWEEP_GLUE.fullmatch(name)
            if not sweep:
                raise ValueError(
                    f"{page}: a takeaway quotes {name!r}, which only the page's own run glues; quote its sweep "
                    "(sweep_<measure>_<stat>) instead"
                )
            return format(findings.measure_spread(page, sweep["measure"], **where)[sweep["stat"]], spec)
        label = re.fullmatch(r"(?P<text>.*?)\s*<[^<>]+>", content, re.S)
        return label["text"] if label else content

    return re.sub(r"\s+([.,;:])", r"\1", ROLE.sub(replace, text)).strip()


def takeaways_markdown(run: Run, config: Config | None = None) -> str:
    """Every page's Key takeaways as one Markdown text: the page's title in bold, then its bullets."""
    config = config or Config()
    book = Path(config.book_dir)
    parts = []
    for page in run.pages:
        bullets = "\n".join(f"- {plain(b, page, config)}" for b in run.takeaways[page])
        parts.append(f"**{page_title(book / f'{page}.ipynb')}**\n\n{bullets}")
    return "\n\n".join(parts) + "\n"


def run(config: Config, *, seed: int = 0, device: str = "auto", progress: bool = True) -> Run:
    """Read every experiment page's sweep and Key takeaways. ``seed``, ``device`` and ``progress`` are accepted
    for the one experiment API and change nothing: reading files needs neither."""
    if not isinstance(config, Config):
        raise TypeError(f"config must be a summary.Config; got {type(config).__name__}")
    notebooks = findings.chapter_notebooks(config.book_dir)
    if not notebooks:
        raise FileNotFoundError(f"no chapter notebooks in {Path(config.book_dir).resolve()}: run the page from book/")
    pages = [nb.stem for nb in notebooks]
    board = findings.scoreboard(pages, config.sweep_scale, config.sweep_device, config.sweeps)
    return Run(pages, board, {nb.stem: findings.takeaways(nb) for nb in notebooks})

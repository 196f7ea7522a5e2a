"""The student edition: the book with every exercise kept and every solution removed.

``python -m halluc_lib.tools.student notebooks`` writes the pages' notebooks, unexecuted and without solutions, to
``_build/student/notebooks/<page>.ipynb`` and all of them to ``_build/student/notebooks.zip``.
``python -m halluc_lib.tools.student html`` builds the student HTML into ``_build/student/html`` from the executed
pages of ``make execute`` (``_build/executed``): the book is staged as for the instructor edition (in
``_build/student/src``), its solutions are removed, and Jupyter Book builds it with the same command and warnings as
errors. ``make student`` runs both.

Solutions are written with sphinx-exercise's gated directives: a ``{solution-start}`` fence opens a solution, which
may span several cells (text and code), and a ``{solution-end}`` fence closes it; a cell may hold the end of one
solution and the next ``{exercise}``. Everything from the opening fence to the end of the closing fence is removed,
whatever cells it spans; a self-contained ``{solution}`` directive is removed too. Nothing else is touched.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import re
import shutil
import sys
import zipfile
from pathlib import Path

import yaml

from . import toc

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "_build"
STUDENT = BUILD / "student"
EXECUTED = BUILD / "executed"
SOLUTION_DIRECTIVES = ("solution-start", "solution-end", "solution")
STUDENT_TITLE = " (student edition)"
ZIP_FOLDER = "notebooks"
# A directive's opening fence (``` or ::: , three or more), e.g. "```{solution-start} ex-ch1-probe".
_FENCE = re.compile(r"^ {0,3}(?P<fence>`{3,}|:{3,})\{(?P<name>[\w:.-]+)\}")
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # a fixed timestamp: the same notebooks always give the same zip, byte for byte


class SolutionSyntaxError(ValueError):
    """Solution directives that do not pair up (an end without a start, a start never ended, a fence never closed)."""


def _closing_fence(lines: list[str], start: int, fence: str) -> int:
    """The index of the line that closes the directive opened at ``lines[start]``: a line of ``fence``'s character
    alone, at least as long (a shorter fence inside, e.g. a code block, does not close it)."""
    closing = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*$")
    for index in range(start + 1, len(lines)):
        if closing.match(lines[index]):
            return index
    raise SolutionSyntaxError(f"the directive {lines[start].strip()!r} is never closed")


def _strip_text(text: str, inside: bool) -> tuple[str, bool]:
    """Remove the solution parts of one Markdown text; ``inside`` says whether the text starts inside a solution
    (opened in an earlier cell). Returns the kept text and whether it ends inside a solution.

    Text that holds no solution comes back unchanged. Where something was removed, the blank lines left at the
    seam, at the start and at the end are dropped (a final newline is kept if the text had one)."""
    lines = text.splitlines(keepends=True)
    kept: list[str] = []
    removed = seam = False
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening and opening["name"] in SOLUTION_DIRECTIVES:
            name = opening["name"]
            if name == "solution-end" and not inside:
                raise SolutionSyntaxError(f"{lines[index].strip()!r} without a solution-start before it")
            if name != "solution-end" and inside:
                raise SolutionSyntaxError(f"{lines[index].strip()!r} inside a solution that is not ended")
            index = _closing_fence(lines, index, opening["fence"]) + 1
            inside = name == "solution-start"
            removed = seam = True
            continue
        if not inside:
            blank = not lines[index].strip()
            if not (seam and blank and (not kept or not kept[-1].strip())):
                kept.append(lines[index])
            seam = seam and blank
        else:
            removed = True
        index += 1
    if not removed:
        return text, inside
    while kept and not kept[-1].strip():
        kept.pop()
    out = "".join(kept)
    out = out.rstrip("\n") + ("\n" if out and text.endswith("\n") else "")
    return out, inside


def strip_markdown_solutions(text: str) -> str:
    """A Markdown page (a ``.md`` file) without its solutions; a page without solutions comes back unchanged."""
    kept, inside = _strip_text(text, inside=False)
    if inside:
        raise SolutionSyntaxError("a solution-start has no solution-end")
    return kept


def _source(cell: dict) -> str:
    source = cell.get("source", "")
    return source if isinstance(source, str) else "".join(source)


def strip_solutions(notebook: dict) -> dict:
    """A copy of ``notebook`` (nbformat 4, as a dict) without its solutions: every cell from a ``{solution-start}``
    through its ``{solution-end}`` is dropped, and a cell that holds text outside a solution (the ``{exercise}``
    after a solution-end, say) keeps that text. Every other cell, outputs included, is kept as it is."""
    stripped = copy.deepcopy(notebook)
    cells = []
    inside = False
    for cell in stripped["cells"]:
        if cell["cell_type"] != "markdown":
            if not inside:
                cells.append(cell)
            continue
        text, was_inside = _source(cell), inside
        kept, inside = _strip_text(text, inside)
        if kept == text and not was_inside:
            cells.append(cell)
        elif kept.strip():
            cell["source"] = kept if isinstance(cell["source"], str) else kept.splitlines(keepends=True)
            cells.append(cell)
    if inside:
        raise SolutionSyntaxError("a solution-start has no solution-end")
    stripped["cells"] = cells
    return stripped


def _dumps(notebook: dict) -> str:
    """A notebook as nbformat writes it (sorted keys, one-space indent), so files diff cleanly against the book's."""
    return json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def student_notebook(path: Path) -> dict:
    """The student copy of one notebook: no solutions, and no outputs (a source notebook has none anyway)."""
    notebook = strip_solutions(json.loads(path.read_text()))
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    return notebook


def write_notebooks(out: Path = STUDENT, root: Path = ROOT) -> list[Path]:
    """Write every page's student notebook to ``out/notebooks/<page>.ipynb`` and all of them, in reading order, to
    ``out/notebooks.zip`` (under a ``notebooks/`` folder). Returns the notebooks' paths in reading order."""
    folder = out / "notebooks"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    written = []
    for source in toc.notebooks(root):
        target = folder / source.name
        target.write_text(_dumps(student_notebook(source)))
        written.append(target)
    archive = out / "notebooks.zip"
    tmp = archive.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w") as zf:
        for path in written:
            info = zipfile.ZipInfo(f"{ZIP_FOLDER}/{path.name}", date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, path.read_bytes())
    tmp.replace(archive)
    return written


def _student_config(path: Path) -> None:
    """The staged ``_config.yml`` for the student edition: its title says so, and it has no launch buttons (they
    open the repository's notebook, solutions included; students work from the notebooks' zip instead)."""
    config = yaml.safe_load(path.read_text())
    config["title"] = config["title"] + STUDENT_TITLE
    config.pop("launch_buttons", None)
    path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))


def strip_book(src: Path) -> list[Path]:
    """Remove the solutions from every notebook and Markdown page of a staged book, in place; return the files
    that changed."""
    changed = []
    for path in sorted((src / "book").rglob("*.ipynb")):
        notebook = json.loads(path.read_text())
        stripped = strip_solutions(notebook)
        if stripped != notebook:
            path.write_text(_dumps(stripped))
            changed.append(path)
    for path in sorted((src / "book").rglob("*.md")):
        text = path.read_text()
        stripped = strip_markdown_solutions(text)
        if stripped != text:
            path.write_text(stripped)
            changed.append(path)
    return changed


def build_html(out: Path = STUDENT, executed: Path = EXECUTED, root: Path = ROOT) -> Path:
    """Build the student HTML into ``out/html`` from the executed pages in ``executed``; return its path.

    The book is staged into ``out/src`` exactly as for the instructor edition (``build.stage``), its solutions are
    removed, and it is built with ``build.build_html`` (Jupyter Book, warnings as errors)."""
    missing = [nb.relative_to(root) for nb in toc.notebooks(root) if not (executed / nb.relative_to(root)).exists()]
    if not executed.is_dir() or missing:
        what = f"{executed} lacks {', '.join(map(str, missing))}" if executed.is_dir() else f"{executed} is missing"
        raise FileNotFoundError(f"{what}: run `make execute` first (the student HTML is built from the executed pages)")
    build = importlib.import_module(f"{__package__}.build")  # imported here: the build imports papermill and torch
    src = build.stage(site=out / "src", executed=executed, root=root)
    strip_book(src)
    _student_config(src / "_config.yml")
    html = out / "html"
    shutil.rmtree(html, ignore_errors=True)
    shutil.rmtree(out / "_build", ignore_errors=True)
    built = build.build_html(site=src, output=out)
    built.rename(html)
    shutil.rmtree(out / "_build", ignore_errors=True)  # Jupyter Book's doctrees and executed copies
    return html


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m halluc_lib.tools.student", description=__doc__)
    parser.add_argument("step", choices=("notebooks", "html"))
    parser.add_argument("--out", type=Path, default=STUDENT, help="output folder (default: _build/student)")
    parser.add_argument(
        "--executed", type=Path, default=EXECUTED, help="executed pages, for html (default: _build/executed)"
    )
    args = parser.parse_args(argv)
    try:
        if args.step == "notebooks":
            written = write_notebooks(args.out)
            print(f"{len(written)} student notebooks in {args.out / 'notebooks'} and {args.out / 'notebooks.zip'}")
        else:
            print(f"the student HTML is in {build_html(args.out, args.executed) / 'index.html'}")
    except (FileNotFoundError, SolutionSyntaxError) as error:
        print(f"student edition: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

"""The teaching pages (prerequisites, notation, syllabus) and the syllabus's class table, without torch.

The syllabus is data (:data:`halluc_lib.tools.syllabus.SESSIONS`); ``book/syllabus.md`` describes the same classes
in prose, and the build fills its marker with a table of the classes' run times read from the seed sweep. These
checks keep the three in step: every chapter page in exactly one class, the prose's classes and pages equal to the
data's, the table's times equal to the sweep's medians (computed here from the JSON files, independently of the
library), every label the teaching pages link to defined, and the marker filled in the staged copy.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import statistics
from pathlib import Path

import pytest
import yaml

from halluc_lib.tools import syllabus
from halluc_lib.tools.toc import toc_files

ROOT = Path(__file__).resolve().parents[2]
BOOK = ROOT / "book"
SWEEPS = ROOT / "data" / "sweeps"
SYLLABUS = BOOK / "syllabus.md"
TEACHING = ("prerequisites", "notation", "syllabus")
ROW = re.compile(r"^\| (\d+)\. (.+?) \| (\d) \| (.+) \| (.+) \|$", re.M)


def toc_chapter_notebooks() -> list[str]:
    """Every chapter notebook of the book (``book/ch*.ipynb`` named in ``_toc.yml``), by stem."""
    return [f.split("/")[-1] for f in toc_files() if re.fullmatch(r"book/ch\w+", f) and (ROOT / f"{f}.ipynb").exists()]


def toc_chapter_pages() -> list[str]:
    """Every chapter page, notebook or Markdown (chapter 6.1 is Markdown)."""
    return [f.split("/")[-1] for f in toc_files() if re.fullmatch(r"book/ch\w+", f)]


def markdown_of_notebook(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


def book_sources() -> dict[str, str]:
    """The Markdown of every page of the book, by stem."""
    sources = {p.stem: p.read_text() for p in BOOK.glob("*.md")}
    sources |= {p.stem: markdown_of_notebook(p) for p in BOOK.glob("*.ipynb")}
    return sources


def defined_labels() -> set[str]:
    """Every label a page defines: ``(label)=`` targets and directive ``:label:`` options (exercises, theorems)."""
    labels = set()
    for text in book_sources().values():
        labels |= set(re.findall(r"^\(([\w-]+)\)=\s*$", text, re.M))
        labels |= set(re.findall(r"^:label: ([\w-]+)\s*$", text, re.M))
    return labels


def exercise_labels() -> set[str]:
    labels = set()
    for path in BOOK.glob("*.ipynb"):
        labels |= set(re.findall(r"```\{exercise\}\n:label: ([\w-]+)", markdown_of_notebook(path)))
    return labels


def role_targets(text: str, role: str) -> list[str]:
    """The targets of every ``{role}`text <target>``` or ``{role}`target``` in ``text``."""
    found = re.findall(rf"\{{{re.escape(role)}\}}`([^`]+)`", text)
    return [(re.search(r"<([^<>]+)>$", f) or re.search(r"(.*)", f)).group(1).strip() for f in found]


def class_sections(text: str) -> dict[int, dict]:
    """The syllabus page's classes: number → week, title and the Markdown of its section."""
    sections, week = {}, None
    parts = re.split(r"^(#{2,3} .+)$", text, flags=re.M)
    for heading, body in zip(parts[1::2], parts[2::2], strict=True):
        if m := re.fullmatch(r"## Week (\d)", heading):
            week = int(m.group(1))
        elif m := re.fullmatch(r"### Class (\d+): (.+)", heading):
            sections[int(m.group(1))] = {"week": week, "title": m.group(2), "text": body}
        elif heading.startswith("## "):
            week = None
    return sections


def sweep_median(page: str) -> float | None:
    """The median wall time of a page's quick-scale CPU runs, read straight from its sweep file."""
    path = SWEEPS / f"{page}.json"
    if not path.exists():
        return None
    runs = json.loads(path.read_text())["runs"]
    cpu = [r for r in runs if str(r.get("device") or "cpu").split(":")[0] == "cpu"]
    times = [r["wall_seconds"] for r in cpu if r["scale"] == "quick"]
    return statistics.median(times) if times else None


# --- the classes as data --------------------------------------------------------------------------------------


def test_eight_classes_two_a_week():
    assert [s.number for s in syllabus.SESSIONS] == list(range(1, 9))
    assert [s.week for s in syllabus.SESSIONS] == [1, 1, 2, 2, 3, 3, 4, 4]
    assert all(s.title and s.pages for s in syllabus.SESSIONS)


def test_every_chapter_notebook_is_in_exactly_one_class():
    taught = [page for s in syllabus.SESSIONS for page in s.pages]
    notebooks = toc_chapter_notebooks()
    assert len(notebooks) >= 20
    for page in notebooks:
        assert taught.count(page) == 1, f"{page} is in {taught.count(page)} classes"
    # and nothing else: every page a class names is a chapter page of the book, once
    assert sorted(taught) == sorted(toc_chapter_pages())


def test_classes_keep_each_page_after_the_pages_it_reuses():
    """A page's "Runs in" box names the chapter whose trained model or records it reuses ("reusing the model chapter
    2.1 trains", "after the other pages of chapter 4"); that chapter's pages must run earlier in the syllabus, so
    the class times (measured in reading order) hold when the classes are taught in order."""
    order = [page for s in syllabus.SESSIONS for page in s.pages]
    checked = 0
    for page in toc_chapter_notebooks():
        first = markdown_of_notebook(BOOK / f"{page}.ipynb").split("**Runs in**", 1)
        assert len(first) == 2, f"{page} has no 'Runs in' box"
        box = first[1].split("```", 1)[0]
        for number in re.findall(r"chapters? (\d+(?:\.\d+)?)", box):
            used = [
                p
                for p in order
                if p != page and (syllabus.page_number(p) == number or syllabus.page_number(p).startswith(f"{number}."))
            ]
            assert used, f"{page}: no page of chapter {number}"
            late = [p for p in used if order.index(p) > order.index(page)]
            assert not late, f"{page} reuses chapter {number}, but the syllabus runs {late} after it"
            checked += 1
    assert checked >= 5  # chapters 2.1, 3.3, 3.5, 4.3, 4.6, 4.7 and 6.3 reuse earlier pages


def test_page_number():
    assert syllabus.page_number("ch01_concepts") == "1"
    assert syllabus.page_number("ch02_1_exposure") == "2.1"
    assert syllabus.page_number("ch06_3_what_pretraining_buys") == "6.3"
    with pytest.raises(ValueError, match="not a chapter page"):
        syllabus.page_number("glossary")


# --- the page against the data --------------------------------------------------------------------------------


def test_the_page_describes_the_same_classes_and_pages():
    sections = class_sections(SYLLABUS.read_text())
    assert sorted(sections) == [s.number for s in syllabus.SESSIONS]
    for s in syllabus.SESSIONS:
        section = sections[s.number]
        assert section["title"] == s.title, f"class {s.number}: the page's title differs from SESSIONS"
        assert section["week"] == s.week, f"class {s.number} is under week {section['week']}, not {s.week}"
        linked = role_targets(section["text"], "doc")
        assert linked == list(s.pages), f"class {s.number} links {linked}, SESSIONS lists {list(s.pages)}"


def test_each_class_assigns_an_exercise_and_states_outcomes():
    for number, section in class_sections(SYLLABUS.read_text()).items():
        assign = re.search(r"\*\*Assign\*\*: (.+?)(?:\n\n|$)", section["text"], re.S)
        assert assign and role_targets(assign.group(1), "ref"), f"class {number} assigns no exercise"
        outcomes = re.search(r"\*\*Learning outcomes\.\*\*.*?\n\n((?:- .+\n(?:  .+\n)*)+)", section["text"])
        assert outcomes, f"class {number} states no learning outcomes"
        items = re.findall(r"^- (\w+)", outcomes.group(1), re.M)
        assert 2 <= len(items) <= 3, f"class {number}: {len(items)} outcomes"


def test_every_exercise_the_syllabus_names_exists():
    named = [t for t in role_targets(SYLLABUS.read_text(), "ref") if t.startswith("ex-")]
    assert len(named) >= 8
    missing = set(named) - exercise_labels()
    assert not missing, f"the syllabus names exercises no notebook defines: {sorted(missing)}"


@pytest.mark.parametrize("page", TEACHING)
def test_teaching_pages_link_only_to_what_exists(page):
    text = (BOOK / f"{page}.md").read_text()
    labels = defined_labels()
    refs = role_targets(text, "ref") + role_targets(text, "prf:ref")
    assert set(refs) <= labels, f"undefined labels: {sorted(set(refs) - labels)}"
    in_toc = {f.split("/")[-1] for f in toc_files()}
    docs = role_targets(text, "doc")
    assert set(docs) <= in_toc, f"documents not in the table of contents: {sorted(set(docs) - in_toc)}"
    assert text.startswith(f"({page})=\n"), "the page's label is its name"


@pytest.mark.parametrize("page", TEACHING)
def test_teaching_pages_type_no_run_time_and_no_per_seed_result(page):
    """Run times come from the sweep (the syllabus's marker), never typed. Code, titles (in italics) and addresses
    are not prose (`-p seed 1`, *10 minutes to pandas*, <https://pandas.pydata.org/docs/user_guide/10min.html>)."""
    text = re.sub(
        r"```.*?```|`[^`\n]+`|\*[^*\n]+\*|<https?://[^>]+>", "", (BOOK / f"{page}.md").read_text(), flags=re.S
    )
    typed = re.search(r"\b\d+(?:\.\d+)? ?(?:s|sec|seconds?|min|minutes?|h|hours?)\b(?!-)|\bseeds? \d|\babout \d", text)
    assert not typed, text[max(typed.start() - 40, 0) : typed.end() + 20]


def test_teaching_part_is_in_the_table_of_contents():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    part = next(p for p in toc["parts"] if p["caption"] == "Teaching")
    assert [c["file"] for c in part["chapters"]] == [f"book/{p}" for p in TEACHING]


def test_notation_lists_every_mathematics_page():
    """Every page whose Markdown holds mathematics is linked from the notation page."""
    notation = (BOOK / "notation.md").read_text()
    linked = set(role_targets(notation, "ref"))
    for path in sorted(BOOK.glob("ch*.ipynb")):
        text = markdown_of_notebook(path)
        symbols = re.findall(r"\$([^$\n]+)\$", text)
        if not any(re.search(r"[A-Za-z]", re.sub(r"\\(times|cdot|approx|ge|le)(?![A-Za-z])", "", s)) for s in symbols):
            continue  # no symbol, only numbers such as $2\times10^{-5}$
        label = re.search(r"^\(([\w-]+)\)=", text, re.M).group(1)
        assert label in linked, f"{path.stem} uses mathematics, but the notation page does not link {label}"


# --- the table from the sweep ---------------------------------------------------------------------------------


def test_table_times_are_the_sums_of_the_sweep_medians():
    table = syllabus.syllabus_markdown()
    rows = {int(m.group(1)): m for m in ROW.finditer(table)}
    assert sorted(rows) == [s.number for s in syllabus.SESSIONS]
    grand = 0.0
    for s in syllabus.SESSIONS:
        row = rows[s.number]
        assert row.group(2) == s.title and int(row.group(3)) == s.week
        total = 0.0
        for page in s.pages:
            link = f"{{doc}}`{syllabus.page_number(page)} <{page}>`"
            assert link in row.group(4), f"class {s.number}: {page} missing from the table"
            notebook = BOOK / f"{page}.ipynb"
            if not notebook.exists() or "Claims(" not in notebook.read_text():  # read, not run: 6.1, 7, 8
                assert f"{link} (read; nothing to run)" in row.group(4)
                continue
            median = sweep_median(page)
            assert median is not None, f"{page} has no quick-scale CPU run in {SWEEPS}"
            assert f"{link} ({median:.0f} s)" in row.group(4)
            total += median
        assert row.group(5) == f"{total:.0f} s", f"class {s.number}: table says {row.group(5)}, sweep sums {total}"
        grand += total
    assert f"| all classes | | | {grand:.0f} s |" in table


def _sweep(path: Path, page: str, runs: list[tuple[str, str, float]]) -> None:
    records = [{"seed": i, "scale": sc, "device": dev, "wall_seconds": w} for i, (sc, dev, w) in enumerate(runs)]
    (path / f"{page}.json").write_text(json.dumps({"page": page, "runs": records}))


def test_table_from_a_small_sweep(tmp_path):
    """Medians over the quick CPU runs only; a notebook without runs and a Markdown page are said to be so."""
    sweep_dir, root = tmp_path / "sweeps", tmp_path / "root"
    sweep_dir.mkdir()
    (root / "book").mkdir(parents=True)
    for page in ("ch01_a", "ch02_1_b", "ch02_2_c"):
        page_cells = [{"cell_type": "code", "source": 'claims = Claims("x", settings)'}]  # a page that runs
        (root / "book" / f"{page}.ipynb").write_text(json.dumps({"cells": page_cells}))
    (root / "book" / "ch02_3_d.md").write_text("# read me")
    _sweep(sweep_dir, "ch01_a", [("quick", "cpu", 10.0), ("quick", "cpu", 30.0), ("quick", "cpu", 14.0)])
    _sweep(sweep_dir, "ch02_1_b", [("quick", "cpu", 5.0), ("quick", "cpu", 7.0), ("full", "cuda:0", 1.0)])
    sessions = (
        syllabus.Session(number=1, week=1, title="One", pages=("ch01_a", "ch02_1_b")),
        syllabus.Session(number=2, week=1, title="Two", pages=("ch02_2_c", "ch02_3_d")),
    )
    table = syllabus.syllabus_markdown(sweep_dir, root, sessions)
    assert "| 1. One | 1 | {doc}`1 <ch01_a>` (14 s), {doc}`2.1 <ch02_1_b>` (6 s) | 20 s |" in table
    assert (
        "| 2. Two | 1 | {doc}`2.2 <ch02_2_c>` (not swept yet), {doc}`2.3 <ch02_3_d>` (read; nothing to run) | "
        "0 s + 1 page(s) not swept yet |" in table
    )
    assert "| all classes | | | 20 s + 1 page(s) not swept yet |" in table
    assert syllabus.session_seconds(sessions[0], sweep_dir, root) == (20.0, [])
    assert syllabus.median_seconds("ch02_2_c", sweep_dir) is None


# --- the marker, filled in the staged copy --------------------------------------------------------------------


def test_marker_is_replaced_in_the_staged_copy_and_not_in_the_source(tmp_path):
    source = SYLLABUS.read_text()
    assert source.count(syllabus.SYLLABUS_MARKER) == 1
    staged = tmp_path / "syllabus.md"
    shutil.copy2(SYLLABUS, staged)
    syllabus.fill_page(staged)
    text = staged.read_text()
    assert syllabus.SYLLABUS_MARKER not in text
    assert syllabus.syllabus_markdown() in text
    assert SYLLABUS.read_text() == source  # the working tree is never written to
    with pytest.raises(ValueError, match="exactly once"):
        syllabus.fill_page(staged)  # the marker is gone: filling twice is an error, not a silent no-op


def test_build_fills_the_marker_when_it_stages_the_book():
    """``build.stage`` (which imports torch, so it is read here rather than run) fills the syllabus marker in the
    staged copy of the page, in ``site``, after copying the book there."""
    tree = ast.parse((ROOT / "halluc_lib" / "tools" / "build.py").read_text())
    stage = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "stage")
    calls = [
        n
        for n in ast.walk(stage)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "fill_page"
    ]
    assert len(calls) == 1 and ast.unparse(calls[0].func.value) == "syllabus"
    target = calls[0].args[0]
    assigned = {
        ast.unparse(t): ast.unparse(n.value) for n in ast.walk(stage) if isinstance(n, ast.Assign) for t in n.targets
    }
    where = assigned.get(ast.unparse(target), ast.unparse(target))
    assert where.startswith("site") and "syllabus.md" in where, where
    copy = next(n for n in ast.walk(stage) if isinstance(n, ast.Call) and ast.unparse(n.func) == "shutil.copytree")
    assert copy.lineno < calls[0].lineno, "the marker is filled after the book is copied to the site"

"""The student edition: solutions stripped from the notebooks (fast, no torch) and from the built HTML (marked
`site`: checks _build/student/html after `make student`)."""

import html
import json
import re
import shutil
import sys
import types
import zipfile
from pathlib import Path

import nbformat
import pytest
import yaml

from halluc_lib.tools import student, toc

ROOT = student.ROOT
NOTEBOOKS = toc.notebooks()
MARKDOWN_PAGES = sorted((ROOT / "book").glob("*.md"))
DIRECTIVE = re.compile(r"\{solution(-start|-end)?\}")
EXERCISE = re.compile(r"```\{exercise\}.*?\n```", re.S)


def md(text):
    return {"cell_type": "markdown", "metadata": {}, "source": text.splitlines(keepends=True)}


def code(text, outputs=()):
    return {
        "cell_type": "code",
        "execution_count": 1 if outputs else None,
        "metadata": {},
        "outputs": list(outputs),
        "source": text.splitlines(keepends=True),
    }


def notebook(*cells):
    return {"cells": list(cells), "metadata": {}, "nbformat": 4, "nbformat_minor": 4}


def text_of(cell):
    return "".join(cell["source"])


STREAM = {"name": "stdout", "output_type": "stream", "text": ["42\n"]}
PAGE = notebook(
    md("# A page\n\nSome text."),
    code("x = 1\nprint(x)", [STREAM]),
    md("## Exercises\n\n```{exercise}\n:label: ex-a\nDo A.\n```"),
    md("```{solution-start} ex-a\n:class: dropdown\n```\nThe answer to A is forty-two."),
    code("answer_a = 42", [STREAM]),
    md("```{solution-end}\n```\n\n```{exercise}\n:label: ex-b\nDo B.\n```"),
    md("```{solution-start} ex-b\n:class: dropdown\n```\nThe answer to B."),
    code("answer_b = 43"),
    md("More of the answer to B, in its own cell."),
    md("```{solution-end}\n```"),
)


# --- the hand-built page: every shape of cell ---------------------------------------------------------------------


def test_strip_solutions_keeps_everything_but_the_solutions():
    original = json.loads(json.dumps(PAGE))
    stripped = student.strip_solutions(PAGE)
    assert stripped["cells"] == [
        PAGE["cells"][0],
        PAGE["cells"][1],  # outputs of other cells are kept
        PAGE["cells"][2],
        md("```{exercise}\n:label: ex-b\nDo B.\n```"),  # the exercise after a solution-end, in the same cell
    ]
    assert stripped["metadata"] == PAGE["metadata"] and stripped["nbformat_minor"] == 4
    assert PAGE == original, "the input is not modified"
    nbformat.validate(nbformat.from_dict(stripped))


def test_a_solution_opened_in_an_exercise_cell_and_text_after_it_are_handled():
    page = notebook(
        md("```{exercise}\n:label: ex-c\nDo C.\n```\n\n```{solution-start} ex-c\n:class: dropdown\n```\nAnswer C."),
        md("```{solution-end}\n```\n\nReferences are collected in the bibliography.\n"),
    )
    cells = student.strip_solutions(page)["cells"]
    assert [text_of(c) for c in cells] == [
        "```{exercise}\n:label: ex-c\nDo C.\n```",
        "References are collected in the bibliography.\n",
    ]


def test_a_page_without_solutions_is_returned_equal():
    page = notebook(md("# Title"), code("x = 1", [STREAM]), md("```{exercise}\n:label: ex-a\nDo A.\n```"))
    assert student.strip_solutions(page) == page


def test_empty_cells_inside_a_solution_go_with_it():
    page = notebook(md("```{solution-start} ex-a\n```"), md(""), code(""), md("```{solution-end}\n```"), md("End."))
    assert [text_of(c) for c in student.strip_solutions(page)["cells"]] == ["End."]


@pytest.mark.parametrize(
    "cells",
    [
        [md("```{solution-end}\n```")],
        [md("```{solution-start} ex-a\n```"), md("Answer.")],
        [md("```{solution-start} ex-a\n```"), md("```{solution-start} ex-b\n```\n```{solution-end}\n```")],
        [md("```{solution-start} ex-a\n:class: dropdown\n")],
    ],
    ids=["end-without-start", "start-without-end", "nested-start", "unclosed-fence"],
)
def test_unpaired_solution_directives_are_errors(cells):
    with pytest.raises(student.SolutionSyntaxError):
        student.strip_solutions(notebook(*cells))


def test_markdown_pages_lose_gated_and_self_contained_solutions():
    page = (
        "# Title\n\n```{exercise}\n:label: ex-a\nDo A.\n```\n\n"
        "````{solution} ex-a\n:class: dropdown\nAnswer A:\n```python\nx = 1\n```\n````\n\n"
        "Between.\n\n"
        ":::{solution-start} ex-b\n:::\nAnswer B.\n:::{solution-end}\n:::\n\n"
        "After.\n"
    )
    assert student.strip_markdown_solutions(page) == (
        "# Title\n\n```{exercise}\n:label: ex-a\nDo A.\n```\n\nBetween.\n\nAfter.\n"
    )
    with pytest.raises(student.SolutionSyntaxError):
        student.strip_markdown_solutions("```{solution-start} ex-a\n```\nAnswer.\n")


@pytest.mark.parametrize("path", MARKDOWN_PAGES, ids=lambda p: p.stem)
def test_the_books_markdown_pages_hold_no_solution(path):
    """No .md page has solutions today; were one to get some, the student HTML strips them too."""
    text = path.read_text()
    assert student.strip_markdown_solutions(text) == text


# --- the book's notebooks -------------------------------------------------------------------------------------------


def test_toc_notebooks_are_every_notebook_in_reading_order():
    toc_order = re.findall(r"file: (\S+)", (ROOT / "_toc.yml").read_text())
    expected = [ROOT / f"{f}.ipynb" for f in toc_order if (ROOT / f"{f}.ipynb").exists()]
    assert NOTEBOOKS == expected
    assert sorted(NOTEBOOKS) == sorted((ROOT / "book").glob("*.ipynb"))


def _solution_cells(cells):
    """Index sets of the cells a solution opens or closes in (boundaries) and of the cells wholly inside one."""
    boundaries, inside_cells, inside = set(), set(), False
    for index, cell in enumerate(cells):
        text = text_of(cell)
        starts, ends = "```{solution-start}" in text, "```{solution-end}" in text
        if starts or ends:
            boundaries.add(index)
            inside = starts and (not ends or text.rindex("```{solution-start}") > text.rindex("```{solution-end}"))
        elif inside:
            inside_cells.add(index)
    return boundaries, inside_cells


def _solution_prose(cells):
    """The prose lines of every solution: text after a solution-start fence, in cells inside, before a solution-end."""
    lines, inside = [], False
    for cell in cells:
        if cell["cell_type"] != "markdown":
            continue
        for line in text_of(cell).splitlines():
            if line.startswith("```{solution-start}"):
                inside = True
            elif line.startswith("```{solution-end}"):
                inside = False
            elif inside and len(line.strip()) >= 20:
                lines.append(line.strip())
    return lines


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_real_notebooks_keep_the_exercises_and_lose_the_solutions(path):
    cells = json.loads(path.read_text())["cells"]
    stripped = student.strip_solutions(json.loads(path.read_text()))["cells"]
    boundaries, inside = _solution_cells(cells)
    assert inside, "the page has solution cells"
    text = "\n".join(text_of(c) for c in stripped)
    # every exercise, whole and in order
    exercises = [e for c in cells for e in EXERCISE.findall(text_of(c))]
    assert len(exercises) >= 3 and EXERCISE.findall(text) == exercises
    # no solution directive, no solution prose, no solution code
    assert not DIRECTIVE.search(text)
    prose = _solution_prose(cells)
    assert prose and [line for line in prose if line in text] == []
    solution_code = [text_of(cells[i]) for i in sorted(inside) if cells[i]["cell_type"] == "code"]
    assert solution_code and not set(solution_code) & {text_of(c) for c in stripped if c["cell_type"] == "code"}
    # every other cell kept, unchanged and in order
    untouched = [c for i, c in enumerate(cells) if i not in boundaries | inside]
    assert [c for c in stripped if c in untouched] == untouched
    # and the cells a solution opened or closed in keep only their text outside the solution
    rest = [c for c in stripped if c not in untouched]
    assert all(c["cell_type"] == "markdown" and any(text_of(c) in text_of(cells[i]) for i in boundaries) for c in rest)


def test_notebooks_and_zip_hold_one_student_notebook_per_page(tmp_path):
    written = student.write_notebooks(tmp_path / "a")
    assert [p.name for p in written] == [p.name for p in NOTEBOOKS]
    assert sorted(p.name for p in (tmp_path / "a" / "notebooks").iterdir()) == sorted(p.name for p in NOTEBOOKS)
    with zipfile.ZipFile(tmp_path / "a" / "notebooks.zip") as zf:
        assert zf.namelist() == [f"notebooks/{p.name}" for p in NOTEBOOKS]
        for path, source in zip(written, NOTEBOOKS, strict=True):
            data = zf.read(f"notebooks/{path.name}")
            assert data == path.read_bytes()
            nb = json.loads(data)
            nbformat.validate(nbformat.from_dict(nb))
            assert nb == student.strip_solutions(json.loads(source.read_text())), "sources: nothing but solutions go"
            assert all(c["outputs"] == [] and c["execution_count"] is None for c in nb["cells"] if "outputs" in c)
    student.write_notebooks(tmp_path / "b")
    assert (tmp_path / "a" / "notebooks.zip").read_bytes() == (tmp_path / "b" / "notebooks.zip").read_bytes()


def test_student_notebooks_have_no_outputs_even_from_an_executed_copy(tmp_path):
    path = tmp_path / "page.ipynb"
    path.write_text(json.dumps(PAGE))
    cells = student.student_notebook(path)["cells"]
    assert len(cells) == 4 and cells[1]["source"] == PAGE["cells"][1]["source"]
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in cells if c["cell_type"] == "code")


def test_main_writes_the_notebooks(tmp_path, capsys):
    assert student.main(["notebooks", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "notebooks.zip").exists()
    assert f"{len(NOTEBOOKS)} student notebooks" in capsys.readouterr().out


# --- the HTML step, with the build's two functions replaced (the real build runs in `make student`) ---------------


@pytest.fixture
def tiny_book(tmp_path):
    root = tmp_path / "root"
    (root / "book").mkdir(parents=True)
    shutil.copy2(ROOT / "_config.yml", root / "_config.yml")
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/index\nchapters:\n  - file: book/page\n")
    (root / "book" / "index.md").write_text("# Index\n")
    (root / "book" / "page.ipynb").write_text(json.dumps(PAGE))
    executed = tmp_path / "executed"
    (executed / "book").mkdir(parents=True)
    (executed / "book" / "page.ipynb").write_text(json.dumps(PAGE))
    return root, executed


@pytest.fixture
def fake_build(monkeypatch):
    calls = []

    def stage(site, executed, root):
        shutil.rmtree(site, ignore_errors=True)
        shutil.copytree(root, site)
        shutil.copy2(executed / "book" / "page.ipynb", site / "book" / "page.ipynb")
        calls.append(("stage", site))
        return site

    def build_html(site, output):
        calls.append(("build_html", site, output, (site / "book" / "page.ipynb").read_text()))
        (output / "_build" / "html").mkdir(parents=True)
        (output / "_build" / ".doctrees").mkdir()
        (output / "_build" / "html" / "index.html").write_text("<html></html>")
        return output / "_build" / "html"

    fake = types.ModuleType("halluc_lib.tools.build")
    fake.stage, fake.build_html = stage, build_html
    monkeypatch.setitem(sys.modules, "halluc_lib.tools.build", fake)
    return calls


def test_html_builds_the_staged_book_without_solutions(tiny_book, fake_build, tmp_path):
    root, executed = tiny_book
    out = tmp_path / "student"
    (out / "html").mkdir(parents=True)
    (out / "html" / "stale.html").write_text("old")
    assert student.build_html(out, executed, root) == out / "html"
    assert [c[0] for c in fake_build] == ["stage", "build_html"]
    _, site, output, built_page = fake_build[1]
    assert site == out / "src" and output == out
    assert json.loads(built_page)["cells"] == student.strip_solutions(PAGE)["cells"], "built from the stripped copy"
    assert sorted(p.name for p in (out / "html").iterdir()) == ["index.html"]
    assert not (out / "_build").exists()
    config, original = (yaml.safe_load(p.read_text()) for p in (site / "_config.yml", ROOT / "_config.yml"))
    assert config["title"] == original["title"] + " (student edition)"
    assert "launch_buttons" not in config and "launch_buttons" in original
    assert {k: v for k, v in config.items() if k not in ("title", "launch_buttons")} == {
        k: v for k, v in original.items() if k not in ("title", "launch_buttons")
    }


def test_html_without_executed_pages_says_to_run_make_execute(tiny_book, fake_build, tmp_path, capsys):
    root, executed = tiny_book
    with pytest.raises(FileNotFoundError, match="run `make execute` first"):
        student.build_html(tmp_path / "student", tmp_path / "nowhere", root)
    (executed / "book" / "page.ipynb").unlink()
    with pytest.raises(FileNotFoundError, match=r"lacks book/page.ipynb: run `make execute` first"):
        student.build_html(tmp_path / "student", executed, root)
    assert fake_build == [], "nothing is staged or built"
    assert student.main(["html", "--out", str(tmp_path / "s"), "--executed", str(tmp_path / "nowhere")]) == 1
    assert "make execute" in capsys.readouterr().err


# --- the built student HTML (make student; marked site) -----------------------------------------------------------

STUDENT_HTML = ROOT / "_build" / "student" / "html"
INSTRUCTOR_HTML = ROOT / "_build" / "html"
EXECUTED = ROOT / "_build" / "executed"
unbuilt = pytest.mark.skipif(
    not (STUDENT_HTML / "index.html").exists(), reason="the student HTML is not built (run `make student`)"
)
PAGES = [p.stem for p in NOTEBOOKS]


def page_text(path: Path) -> str:
    """A page's visible text: no scripts or styles, no tags, entities decoded, whitespace collapsed."""
    text = re.sub(r"<(script|style)\b.*?</\1>", " ", path.read_text(), flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", "", text))).strip()


def fragments(markdown: str) -> list[str]:
    """Runs of plain prose (30 characters or more) that Sphinx renders verbatim: the text between roles, math,
    inline code, emphasis, links and the quotes and dashes that smartquotes rewrites."""
    text = "\n".join(line for line in markdown.splitlines() if not re.match(r"\s*(`{3,}|:{3,}|:[\w-]+:)", line))
    text = re.sub(r"\{[\w:-]+\}`[^`]*`|\$\$.*?\$\$|\$[^$]*\$|`[^`]*`", "|", text, flags=re.S)
    parts = re.split(r"[*_\[\]{}()<>|\\#\"'~^=+`$]|--|\.\.\.", text)
    return [" ".join(p.split()) for p in parts if len(" ".join(p.split())) >= 30]


def shown_of(cell) -> str:
    """Everything a cell puts on the page: its source and, for an executed code cell, its outputs' text (a table
    of the trade-off ledger, say, shows phrases an exercise's solution also uses)."""
    outputs = []
    for out in cell.get("outputs", []):
        outputs.append("".join(out.get("text", "")))
        for kind in ("text/plain", "text/html", "text/markdown"):
            value = out.get("data", {}).get(kind, "")
            outputs.append(html.unescape(re.sub(r"<[^>]+>", " ", "".join(value))))
    return "\n".join([text_of(cell), *outputs])


def solutions(cells) -> list[list[str]]:
    """Per solution of a page, the strings that must not appear in the student page: its prose fragments and its
    code's longer lines (rendered verbatim, token by token, in highlighted blocks)."""
    found, inside = [], False
    for cell in cells:
        text = text_of(cell)
        if cell["cell_type"] == "markdown" and "```{solution-start}" in text:
            inside, text = True, text[text.index("```{solution-start}") :]
            found.append([])
        if not inside:
            continue
        if cell["cell_type"] == "code":
            found[-1] += [" ".join(line.split()) for line in text.splitlines() if len(line.strip()) >= 25]
            continue
        if "```{solution-end}" in text:
            inside, text = False, text[: text.index("```{solution-end}")]
        found[-1] += fragments(text)
    return found


def instructor_cells(page: str):
    """The instructor notebook the HTML was built from: the executed copy, or the source if there is none."""
    path = EXECUTED / "book" / f"{page}.ipynb"
    return json.loads((path if path.exists() else ROOT / "book" / f"{page}.ipynb").read_text())["cells"]


def exercise_titles(path: Path) -> dict[str, str]:
    """Each exercise's label and rendered title (e.g. "Exercise 16"), from a built page."""
    found = re.findall(
        r'<div class="exercise[^"]*" id="([^"]+)">\s*<p class="admonition-title">(.*?)</p>', path.read_text(), re.S
    )
    return {label: " ".join(html.unescape(re.sub(r"<[^>]+>", "", title)).split()) for label, title in found}


def test_fragments_are_plain_prose():
    text = "Seen {glue:text}`n` times, the model answers every question with confidence; $p$ of them are **right**."
    assert fragments(text) == ["times, the model answers every question with confidence;"]


@pytest.mark.site
@unbuilt
@pytest.mark.parametrize("page", PAGES)
def test_student_html_holds_no_solution(page):
    target = STUDENT_HTML / "book" / f"{page}.html"
    cells = instructor_cells(page)
    per_solution = solutions(cells)
    assert len(per_solution) >= 3 and all(per_solution), "every solution gives strings to look for"
    # a solution's line that the page also shows outside its solutions (a common call such as
    # `seed=seed, device=settings.device)`, a phrase of the exercise) says nothing about the solution being there
    kept = " ".join(" ".join(shown_of(c).split()) for c in student.strip_solutions({"cells": cells})["cells"])
    distinctive = [[s for s in strings if s not in kept] for strings in per_solution]
    assert any(distinctive), "the page's solutions have text of their own to look for"
    text = page_text(target)
    assert [s for strings in distinctive for s in strings if s in text] == []
    assert 'class="solution' not in target.read_text()
    source = STUDENT_HTML / "_sources" / "book" / f"{page}.ipynb"
    assert source.exists() and not DIRECTIVE.search(source.read_text()), "the page's download holds no solution"
    instructor = INSTRUCTOR_HTML / "book" / f"{page}.html"
    if instructor.exists():  # the control: the same strings are found where the solutions are shown
        shown = page_text(instructor)
        assert [s for strings in per_solution for s in strings if s not in shown] == []
        assert instructor.read_text().count('<div class="solution') == len(per_solution)


@pytest.mark.site
@unbuilt
@pytest.mark.parametrize("page", PAGES)
def test_student_html_shows_every_exercise(page):
    target = STUDENT_HTML / "book" / f"{page}.html"
    cells = instructor_cells(page)
    blocks = [e for c in cells for e in EXERCISE.findall(text_of(c))]
    labels = [re.search(r":label: (\S+)", block)[1] for block in blocks]
    titles = exercise_titles(target)
    assert list(titles) == labels
    assert all(re.fullmatch(r"Exercise \d+", title) for title in titles.values()), titles
    instructor = INSTRUCTOR_HTML / "book" / f"{page}.html"
    if instructor.exists():  # numbered as in the instructor edition
        assert titles == exercise_titles(instructor)
    text = page_text(target)
    prose = [f for block in blocks for f in fragments(block)]
    assert prose and [f for f in prose if f not in text] == []


@pytest.mark.site
@unbuilt
def test_student_site_says_so_and_offers_no_launch_buttons():
    # the root index.html only redirects to the book's first page, which carries the site's title
    assert "(student edition)" in (STUDENT_HTML / "book" / "index.html").read_text()
    launch = [p.name for p in STUDENT_HTML.rglob("*.html") if "colab.research.google.com" in p.read_text()]
    assert launch == [], "launch buttons would open the repository's notebooks, solutions included"
    with zipfile.ZipFile(STUDENT_HTML.parent / "notebooks.zip") as zf:
        assert zf.namelist() == [f"notebooks/{p}.ipynb" for p in PAGES]
        assert not [n for n in zf.namelist() if DIRECTIVE.search(zf.read(n).decode())]

"""The PDF (`make pdf`): the build's PDF step with its commands replaced, then checks on the built PDF,
_build/pdf/book.pdf (marked pdf; `make pdf` runs them after the build, with pdftotext from poppler-utils)."""

import json
import re
import subprocess
import unicodedata
from pathlib import Path

import pytest

from halluc_lib.tools import build

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "_build" / "pdf"
PDF = OUT / "book.pdf"
# The Chinese source document's title, as the preface quotes it.
CHINESE_TITLE = "幻觉来自数据预训练数据"
HIDDEN = {"remove-output", "remove-cell"}  # cells whose outputs no edition shows


def _markdown(path: Path) -> str:
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text())["cells"]
        return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    return path.read_text()


def page_titles(root: Path = ROOT) -> list[str]:
    """Every page's title (its first "# " heading, inline code marks dropped), in `_toc.yml`'s reading order."""
    titles = []
    for page in build.toc_files(root):
        path = next(p for p in (root / f"{page}.ipynb", root / f"{page}.md") if p.exists())
        heading = re.search(r"^# (.+)$", _markdown(path), re.M)
        assert heading, f"{path.name} has no title"
        titles.append(heading[1].replace("`", "").strip())
    return titles


def normalise(text: str) -> str:
    """Text as compared: compatibility forms (the ligatures pdftotext may give) folded, typographic quotes made
    straight (Sphinx's smartquotes), whitespace collapsed (titles wrap)."""
    text = unicodedata.normalize("NFKC", text).translate(str.maketrans("‘’“”", "''\"\""))
    return " ".join(text.split())


def test_page_titles_follow_the_toc():
    titles = page_titles()
    assert len(titles) == len(build.toc_files()) and titles[0] == "The Hallucination Book"
    assert "2.1 Exposure count and the long tail" in titles and "halluc_lib.core — the machinery" in titles


def test_the_preface_quotes_the_chinese_title():
    assert CHINESE_TITLE in (ROOT / "book" / "preface.md").read_text()


# --- the PDF step, with staging, Jupyter Book and make replaced (the real build runs in `make pdf`) ---------------


def test_label_exercises_adds_the_label_ref_points_to():
    tex = (
        r"\phantomsection\label{\detokenize{book/a::doc}}" + "\n"
        r"\phantomsection \label{exercise:ex-a}" + "\n"
        r"\phantomsection\label{\detokenize{book/b::doc}}" + "\n"
        r"\phantomsection \label{exercise:ex-b}\label{other}" + "\n"
    )
    labelled = build.label_exercises(tex)
    assert labelled.splitlines() == [
        r"\phantomsection\label{\detokenize{book/a::doc}}",
        r"\phantomsection \label{exercise:ex-a}\label{\detokenize{book/a:ex-a}}",
        r"\phantomsection\label{\detokenize{book/b::doc}}",
        r"\phantomsection \label{exercise:ex-b}\label{\detokenize{book/b:ex-b}}\label{other}",
    ]
    assert build.label_exercises("no exercise") == "no exercise"


def test_build_pdf_stages_builds_and_copies_the_pdf(tmp_path, monkeypatch):
    out, executed = tmp_path / "pdf", tmp_path / "executed"
    (out / "_build" / "stale").mkdir(parents=True)
    (out / "book.pdf").write_text("old")
    calls = []

    def stage(site, executed, root):
        calls.append(("stage", site, executed, root))
        site.mkdir(parents=True)
        return site

    def run(cmd, check):
        assert check
        calls.append(("run", cmd))
        latex = out / "_build" / "latex"
        if cmd[1] == "build":
            assert not (out / "_build" / "stale").exists(), "the last build's LaTeX is removed first"
            latex.mkdir(parents=True)
            (latex / "book.tex").write_text(
                r"\label{\detokenize{book/a::doc}}\label{exercise:ex}",
            )
        else:
            (latex / "book.pdf").write_text("%PDF")
            (latex / "book.log").write_text("log")

    monkeypatch.setattr(build, "stage", stage)
    monkeypatch.setattr(build.subprocess, "run", run)
    assert build.build_pdf(out, executed, tmp_path) == out / "book.pdf"
    assert calls[0] == ("stage", out / "src", executed, tmp_path)
    book, make = calls[1][1], calls[2][1]
    assert book[1:5] == ["build", str(out / "src"), "--path-output", str(out)]
    assert book[5:] == ["--builder", "latex", "-W", "-n", "--keep-going"], "the HTML build's warnings as errors"
    assert make[:4] == ["make", "-C", str(out / "_build" / "latex"), "all-pdf"] and "-halt-on-error" in make[4]
    assert r"\label{\detokenize{book/a:ex}}" in (out / "_build" / "latex" / "book.tex").read_text()
    assert (out / "book.pdf").read_text() == "%PDF" and (out / "book.log").read_text() == "log"


def test_main_builds_the_pdf_from_the_executed_pages_it_is_given(tmp_path, monkeypatch, capsys):
    seen = []
    monkeypatch.setattr(build, "build_pdf", lambda executed: seen.append(executed) or tmp_path / "book.pdf")
    assert build.main(["pdf", "--executed", str(tmp_path)]) == 0
    assert seen == [tmp_path] and str(tmp_path / "book.pdf") in capsys.readouterr().out


# --- the built PDF (make pdf; marked pdf) -------------------------------------------------------------------------

built = pytest.mark.skipif(not PDF.exists(), reason="the PDF is not built (run `make pdf`)")


def _run(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, encoding="utf-8").stdout


@pytest.fixture(scope="module")
def text():
    return normalise(_run("pdftotext", "-enc", "UTF-8", str(PDF), "-"))


@pytest.mark.pdf
@built
def test_pdf_is_the_whole_book():
    assert PDF.read_bytes()[:5] == b"%PDF-"
    info = _run("pdfinfo", str(PDF))
    assert int(re.search(r"^Pages:\s+(\d+)", info, re.M)[1]) > 2 * len(build.toc_files())
    assert re.search(r"^Title:\s+The Hallucination Book$", info, re.M)


@pytest.mark.pdf
@built
def test_pdf_holds_every_title_in_reading_order(text):
    """Every page's title, in `_toc.yml`'s order: once through the table of contents, then again through the
    chapters themselves (each title searched from where the one before it was found)."""
    titles = [normalise(t) for t in page_titles()[1:]]  # the root's title, the book's, heads every page
    assert normalise(page_titles()[0]) in text
    position = 0
    for where in ("table of contents", "chapters"):
        for title in titles:
            found = text.find(title, position)
            assert found >= 0, f"{title!r} is missing from the {where} (after character {position})"
            position = found + len(title)


@pytest.mark.pdf
@built
def test_pdf_holds_the_chinese_title(text):
    assert CHINESE_TITLE in text
    fonts = _run("pdffonts", str(PDF))
    assert "NotoSerifCJK" in fonts, "set in the CJK font, not dropped as a missing glyph"
    assert "LatinModernMath" in fonts, "the mathematics is typeset"


@pytest.mark.pdf
@built
def test_pdf_has_no_unresolved_reference_or_missing_glyph(text):
    assert "??" not in text, "LaTeX prints ?? for a reference it could not resolve"
    # XeLaTeX's log of its last run: a reference, link target or citation it could not resolve, or a label defined
    # twice, is a warning there (whatever text the reference shows)
    log = (OUT / "book.log").read_text(errors="replace")
    assert not re.findall(r"LaTeX Warning: (?:Reference|Hyper reference|Citation|Label) .*", log)
    assert "There were undefined references" not in log and "There were multiply-defined labels" not in log
    assert not re.findall(r"Missing character: There is no .*", log), "a character no font of the PDF has"


@pytest.mark.pdf
@built
def test_pdf_holds_every_figure():
    pngs = 0
    for path in (OUT / "src" / "book").glob("*.ipynb"):
        for cell in json.loads(path.read_text())["cells"]:
            if not HIDDEN & set(cell.get("metadata", {}).get("tags", [])):
                pngs += sum("image/png" in o.get("data", {}) for o in cell.get("outputs", []))
    listing = _run("pdfimages", "-list", str(PDF))
    images = [line.split() for line in listing.splitlines()[2:]]
    assert pngs >= 20 and sum(row[2] == "image" for row in images) >= pngs

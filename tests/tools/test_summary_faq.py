"""The pages that look back (summary, FAQ) type no number and quote only what the sweep holds; every chapter has
its Key takeaways. No torch: these checks read JSON and parse code."""

import ast
import json
import re
from pathlib import Path

import pytest
import yaml

from halluc_lib.core import findings
from halluc_lib.tools import install

ROOT = Path(__file__).resolve().parents[2]
BOOK = ROOT / "book"
LOOKING_BACK = [BOOK / "ch07_summary.ipynb", BOOK / "ch08_faq.ipynb"]
CHAPTERS = findings.chapter_notebooks(BOOK)

ROLE = re.compile(r"\{(?P<role>[\w:-]+)\}`(?P<content>[^`]*)`")
GLUE_ROLE = re.compile(r"\{glue(?::\w+)?\}`(?P<name>[^`:]+)(?::[^`]*)?`")
#: "chapter 2.2", "chapters 2.4 and 5.1–5.3", "Chapter 4.6": a page's number, not a result.
CHAPTER_REFERENCE = re.compile(r"\b[Cc]hapters?\s+\d+(?:\.\d+)?(?:\s*(?:–|-|,|and|or)\s*\d+(?:\.\d+)?)*")
#: The page's own number in its title ("# 7. Summary and outlook"), and directive labels.
OWN_NUMBER = re.compile(r"^#\s+\d+(?:\.\d+)?\.?\s", re.M)
LABEL = re.compile(r"^(?::label:|```\{solution-(?:start|end)\}).*$", re.M)


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def source(cell: dict) -> str:
    return "".join(cell["source"])


def markdown(path: Path) -> list[str]:
    return [source(c) for c in cells(path) if c["cell_type"] == "markdown"]


def code(path: Path) -> list[str]:
    return [source(c) for c in cells(path) if c["cell_type"] == "code" and not install.is_install_cell(c)]


def untyped(text: str, *, roles: bool = True) -> str:
    """``text`` without what may hold digits: roles (glue, cite keys, doc and ref targets) or only glue roles,
    chapter references, the page's own number and directive labels."""
    text = ROLE.sub(" ", text) if roles else GLUE_ROLE.sub(" ", text)
    return LABEL.sub(" ", OWN_NUMBER.sub(" ", CHAPTER_REFERENCE.sub(" ", text)))


def quoted_findings(path: Path) -> list[dict]:
    """Every ``findings.glue_finding(...)`` call in the page's code: its glue name, page, claim or measure, scale
    and device (the defaults when not given); each must be written with literal strings."""
    found = []
    for text in code(path):
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "glue_finding":
                names = ["glue_name", "page", "claim", "measure", "stat", "scale", "device"]
                args = dict(zip(names, node.args, strict=False)) | {k.arg: k.value for k in node.keywords}
                assert all(isinstance(v, ast.Constant) for v in args.values()), ast.unparse(node)
                values = {k: v.value for k, v in args.items()}
                found.append({"scale": "quick", "device": "cpu", "claim": None, "measure": None} | values)
    return found


@pytest.mark.parametrize("path", LOOKING_BACK, ids=lambda p: p.stem)
def test_markdown_types_no_number(path):
    for index, text in enumerate(markdown(path)):
        rest = untyped(text)
        found = re.search(r"\d", rest)
        assert not found, f"cell {index} types a number: {rest[max(found.start() - 60, 0) : found.end() + 20]!r}"


def test_the_number_check_catches_a_typed_number():
    assert re.search(r"\d", untyped("the gap was 14 points"))
    assert not re.search(r"\d", untyped("({doc}`chapter 2.2 <ch02_2_monofacts>`), chapters 2.4 and 5.1–5.3"))
    assert not re.search(r"\d", untyped("# 7. Summary\n:label: ex-a1\n{glue:text}`gap:.0%` {cite}`kalai2025why`"))


@pytest.mark.parametrize("path", LOOKING_BACK, ids=lambda p: p.stem)
def test_every_glued_name_is_read_by_findings_and_quoted(path):
    used = {m["name"] for text in markdown(path) for m in GLUE_ROLE.finditer(text)}
    glued = [f["glue_name"] for f in quoted_findings(path)]
    assert glued, "the page quotes nothing"
    assert len(glued) == len(set(glued)), "a glue name is glued twice"
    assert used - set(glued) == set(), (
        f"quoted in the prose but not glued by findings.glue_finding: {used - set(glued)}"
    )
    assert set(glued) - used == set(), f"glued but never quoted: {set(glued) - used}"


@pytest.mark.parametrize("path", LOOKING_BACK, ids=lambda p: p.stem)
def test_every_quoted_claim_and_measure_is_in_its_pages_sweep(path):
    for f in quoted_findings(path):
        names = findings.available(f["page"], f["scale"], f["device"])
        if f["claim"] is not None:
            assert f["claim"] in names["claims"], f"{f['page']}: no claim {f['claim']!r}"
        else:
            assert f["measure"] in names["measures"], f"{f['page']}: no measure {f['measure']!r}"


@pytest.mark.parametrize("path", LOOKING_BACK, ids=lambda p: p.stem)
def test_the_page_ends_by_checking_provenance_and_runs_no_experiment(path):
    text = "\n".join(code(path))
    assert "Claims(" not in "\n".join(source(c) for c in cells(path)), "a page that runs no experiment has no claims"
    assert "findings.provenance(quoted)" in text and "all_runs_passed.all()" in text
    assert "import torch" not in text and "runtime.setup" not in text


@pytest.mark.parametrize("path", LOOKING_BACK, ids=lambda p: p.stem)
def test_every_linked_page_exists(path):
    for text in markdown(path):
        for m in ROLE.finditer(text):
            if m["role"] == "doc":
                assert "\n" not in m["content"], f"a role split over two lines: {m[0]!r}"
                target = re.fullmatch(r"(?:.*<)?(?P<t>[^<>]+?)>?", m["content"].strip())["t"]
                assert list(BOOK.glob(f"{target}.*")), f"{{doc}} target {target!r} does not exist"


def test_looking_back_follows_the_worked_project_in_the_toc():
    parts = yaml.safe_load((ROOT / "_toc.yml").read_text())["parts"]
    captions = [p["caption"] for p in parts]
    part = parts[captions.index("Looking back")]
    assert captions.index("Looking back") == captions.index("The worked project") + 1
    assert [c["file"] for c in part["chapters"]] == ["book/ch07_summary", "book/ch08_faq"]


# --- every chapter's Key takeaways ---------------------------------------------------------------------------------


def test_the_chapters_are_every_chapter_notebook_but_the_looking_back_pages():
    every = sorted(BOOK.glob("ch0*.ipynb"))
    assert sorted(CHAPTERS + LOOKING_BACK) == every and len(CHAPTERS) >= 20


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_chapter_has_one_takeaways_cell_before_its_exercises(path):
    page = cells(path)
    tagged = [i for i, c in enumerate(page) if "takeaways" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{len(tagged)} cells tagged takeaways"
    text = source(page[tagged[0]])
    assert page[tagged[0]]["cell_type"] == "markdown"
    assert text.startswith("```{admonition} Key takeaways\n:class: tip\n") and text.rstrip().endswith("```")
    after = source(page[tagged[0] + 1])
    assert after.startswith("## Exercises") or after.startswith("References"), "placed before the exercises"
    assert 2 <= len(findings.takeaways(path)) <= 4


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_takeaways_type_no_number_and_quote_only_the_sweep(path):
    for bullet in findings.takeaways(path):
        rest = untyped(bullet, roles=False)
        assert not re.search(r"\d", rest), f"a takeaway types a number: {bullet!r}"
        for m in GLUE_ROLE.finditer(bullet):
            # the summary shows takeaways outside their page, where only the sweep's glue can be read
            sweep = re.fullmatch(r"sweep_(\w+)_(min|median|max)", m["name"])
            assert m["name"] == "sweep_seeds" or (sweep and sweep[1] in findings.available(path.stem)["measures"]), (
                f"a takeaway quotes {m['name']!r}, which is not in the page's sweep"
            )

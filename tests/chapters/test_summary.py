"""Chapter 7 reads every experiment page's sweep and takeaways, and shows a takeaway outside its page."""

import json
from pathlib import Path

import pytest

from halluc_lib.chapters import summary

ROOT = Path(__file__).resolve().parents[2]  # not tools.build's ROOT: build imports torch


def _page(book, name, title, bullets, code='claims = Claims("x", settings)'):
    box = "```{admonition} Key takeaways\n:class: tip\n" + "".join(f"- {b}\n" for b in bullets) + "```"
    cells = [
        {"cell_type": "markdown", "metadata": {}, "source": [f"(label)=\n# {title}\n\nProse."]},
        {"cell_type": "code", "metadata": {}, "source": [code]},
        {"cell_type": "markdown", "metadata": {"tags": ["takeaways"]}, "source": [box]},
    ]
    (book / f"{name}.ipynb").write_text(json.dumps({"cells": cells}))


def _sweep(sweep_dir, page, gain=0.25):
    run = {
        "seed": 0,
        "scale": "quick",
        "device": "cpu",
        "claims": [
            {
                "name": "c",
                "value": 1.0,
                "comparison": ">=",
                "threshold": 0.5,
                "passed": True,
                "baseline": 0.0,
                "kind": "finding",
            }
        ],
        "measurements": {"gain": gain},
    }
    (sweep_dir / f"{page}.json").write_text(json.dumps({"page": page, "runs": [run, {**run, "seed": 1}]}))


@pytest.fixture
def book(tmp_path):
    book, sweep_dir = tmp_path / "book", tmp_path / "sweeps"
    book.mkdir()
    sweep_dir.mkdir()
    _page(book, "ch01_a", "1. A page", ["it {glue:text}`sweep_gain_median:.0%` grew ({ref}`chapter 2.1 <ch-b>`)."])
    _page(book, "ch02_1_b", "2.1 B page", ["see {doc}`ch01_a` {cite}`key2024`.", "plain"])
    _page(book, "ch07_summary", "7. Summary", ["not collected"], code="run = summary.run(config)")
    for page in ("ch01_a", "ch02_1_b"):
        _sweep(sweep_dir, page)
    return summary.Config(book_dir=str(book), sweep_dir=str(sweep_dir))


def test_run_reads_every_experiment_page(book):
    run = summary.run(book, seed=3, device="cpu")
    assert run.pages == ["ch01_a", "ch02_1_b"]
    assert run.scoreboard.loc["ch01_a"].tolist() == [1, 1, 2, True]
    assert run.takeaways["ch02_1_b"] == ["see {doc}`ch01_a` {cite}`key2024`.", "plain"]
    with pytest.raises(TypeError, match="config must be a summary.Config"):
        summary.run(object())
    with pytest.raises(FileNotFoundError, match="no chapter notebooks"):
        summary.run(summary.Config(book_dir=str(book.sweeps)))


def test_takeaways_read_outside_their_page(book):
    text = summary.takeaways_markdown(summary.run(book), book)
    assert text == ("**1. A page**\n\n- it 25% grew (chapter 2.1).\n\n**2.1 B page**\n\n- see ch01_a.\n- plain\n")


def test_a_takeaway_may_quote_its_sweep_but_not_its_own_run(book):
    assert summary.plain("over {glue:text}`sweep_seeds` seeds", "ch01_a", book) == "over 2 seeds"
    with pytest.raises(ValueError, match="ch01_a: a takeaway quotes 'acc_64'"):
        summary.plain("{glue:text}`acc_64:.0%` right", "ch01_a", book)


def test_config_is_the_same_at_both_scales():
    assert summary.Config.for_scale("quick") == summary.Config.for_scale("full") == summary.Config()
    with pytest.raises(ValueError, match="scale must be one of"):
        summary.Config(sweep_scale="huge")


def test_page_title(tmp_path):
    assert summary.page_title(ROOT / "book" / "ch02_2_monofacts.ipynb") == "2.2 Facts seen once must be hallucinated"
    (tmp_path / "ch09_x.ipynb").write_text(json.dumps({"cells": []}))
    assert summary.page_title(tmp_path / "ch09_x.ipynb") == "ch09_x"


def test_the_books_takeaways_render():
    config = summary.Config(book_dir=str(ROOT / "book"))
    text = summary.takeaways_markdown(summary.run(config), config)
    assert text.count("**") == 2 * len(summary.run(config).pages) and "{" not in text

"""Chapter 8 lays out the source's questions and what the committed sweep covers."""

import json
from pathlib import Path

import pandas as pd
import pytest

from halluc_lib.chapters import faq
from halluc_lib.core import findings

ROOT = Path(__file__).resolve().parents[2]  # not tools.build's ROOT: build imports torch


def test_the_source_answers_three_questions_alike():
    table = faq.source_table()
    assert list(table.index) == [1, 2, 3, 4, 5]
    assert table["same answer as question"].fillna(0).tolist() == [0, 0, 1, 0, 1]
    assert table.loc[3, "the source's answer"] == faq.FIVE_REMEDIES
    assert len(set(table["what it asks"])) == 5


def test_swept_at_reads_a_coverage_table():
    table = pd.DataFrame({"quick on cpu": [5, 5], "full on cuda": [0, 3]}, index=["ch_a", "ch_b"])
    assert faq.swept_at(table, "quick") == ["ch_a", "ch_b"]
    assert faq.swept_at(table, "full") == ["ch_b"]
    assert faq.swept_at(table[["quick on cpu"]], "full") == []
    with pytest.raises(ValueError, match="scale must be one of"):
        faq.swept_at(table, "huge")


def test_run_reads_the_coverage_of_every_experiment_page(tmp_path):
    book, sweeps = tmp_path / "book", tmp_path / "sweeps"
    book.mkdir()
    sweeps.mkdir()
    code = {"cell_type": "code", "metadata": {}, "source": ['claims = Claims("ch01_a", settings)']}
    (book / "ch01_a.ipynb").write_text(json.dumps({"cells": [code]}))
    run_ = {"seed": 0, "scale": "full", "device": "cuda:0", "claims": []}
    (sweeps / "ch01_a.json").write_text(json.dumps({"page": "ch01_a", "runs": [run_]}))
    run = faq.run(faq.Config(book_dir=str(book), sweep_dir=str(sweeps)), seed=1, device="cpu")
    assert run.pages == ["ch01_a"] and faq.swept_at(run.coverage, "full") == ["ch01_a"]
    assert len(run.questions) == len(faq.SOURCE_QUESTIONS)
    with pytest.raises(TypeError, match="config must be a faq.Config"):
        faq.run(object())
    with pytest.raises(FileNotFoundError, match="run the page from book/"):
        faq.run(faq.Config(book_dir=str(sweeps)))
    assert faq.Config.for_scale("full") == faq.Config()
    with pytest.raises(ValueError, match="scale must be one of"):
        faq.Config(sweep_scale="huge")


def test_the_committed_sweep_is_what_the_faq_says():
    """The FAQ's answer about model size says the committed sweep holds every page at quick scale, and chapter 2.1
    alone at full scale, once, on a CPU."""
    pages = [nb.stem for nb in findings.chapter_notebooks(ROOT / "book")]
    coverage = findings.coverage(pages)
    assert faq.swept_at(coverage, "quick") == pages
    assert faq.swept_at(coverage, "full") == ["ch02_1_exposure"]
    assert coverage.loc["ch02_1_exposure"].filter(like="full on").to_dict() == {"full on cpu": 1}

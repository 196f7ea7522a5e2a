import json

import pytest

from halluc_lib.core import sweeps
from halluc_lib.tools import build, sweep
from tests.pages import write_page


def _record(seed, value, device="cpu", scale="quick"):
    return {
        "page": "ch_x",
        "seed": seed,
        "scale": scale,
        "device": device,
        "wall_seconds": 1.0,
        "claims": [
            {
                "name": "a",
                "value": value,
                "comparison": ">",
                "threshold": 0.5,
                "passed": value > 0.5,
                "baseline": 0.0,
                "kind": "finding",
            }
        ],
    }


def test_merge_replaces_only_the_same_seed_scale_and_device_kind(tmp_path):
    for record in (_record(0, 0.9), _record(1, 0.8), _record(0, 0.7, device="cuda:0")):
        sweep.merge_run("ch_x", record, tmp_path)
    sweep.merge_run("ch_x", _record(0, 0.6, device="cpu"), tmp_path)
    runs = json.loads((tmp_path / "ch_x.json").read_text())["runs"]
    assert [(r["device"], r["seed"], r["claims"][0]["value"]) for r in runs] == [
        ("cpu", 0, 0.6),
        ("cpu", 1, 0.8),
        ("cuda:0", 0, 0.7),
    ]


def test_pages_and_jobs_are_validated():
    with pytest.raises(ValueError, match=r"pages: unknown \['ch99_nothing'\]; accepted values"):
        sweep.select_pages(["ch99_nothing"])
    assert [p.stem for p in sweep.select_pages(["ch03_4_good_turing", "ch01_concepts"])] == [
        "ch01_concepts",
        "ch03_4_good_turing",
    ]  # reading order, whatever the order asked
    assert sweep.core_groups(2, [0, 1, 2, 3, 4]) == [[0, 1], [2, 3]]
    with pytest.raises(ValueError, match="jobs must be at most"):
        sweep.core_groups(3, [0, 1])


def _notebook(path, body):
    return write_page(path, 'seed = 0\nscale = "quick"\ndevice = "auto"', body)


def test_run_page_records_the_claims_the_hashes_and_a_failure(tmp_path):
    body = (
        "from halluc_lib.core.claims import Claims\n"
        "from halluc_lib.core import runtime\n"
        "claims = Claims('ch_tiny', runtime.setup(seed=seed, scale=scale, device='cpu', threads=1))\n"
        "claims.measure('twice_seed', 2 * seed)\n"
        "claims.check('seed is small', seed, '<', 2, baseline=5)\n"
        "claims.finish()\n"
    )
    nb = _notebook(tmp_path / "ch_tiny.ipynb", body)
    good = sweep.run_page(nb, seed=1, scale="quick", device="cpu", out=tmp_path / "out")
    assert good["error"] is None and good["seed"] == 1 and good["measurements"] == {"twice_seed": 2.0}
    assert good["notebook_sha256"] == sweeps.code_cells_sha256(nb) and good["wall_seconds"] > 0
    assert "halluc_lib.core.claims" in good["library_modules"]
    assert good["library_sha256"] == sweeps.library_sha256(good["library_modules"])
    bad = sweep.run_page(nb, seed=3, scale="quick", device="cpu", out=tmp_path / "out")
    assert "claim failed: seed is small" in bad["error"]
    assert [c["passed"] for c in bad["claims"]] == [False]  # written before the page raised


def test_robustness_page_shows_every_seed_the_spread_and_staleness(tmp_path):
    root = tmp_path / "book_root"
    (root / "book").mkdir(parents=True)
    (root / "_toc.yml").write_text("root: book/ch_x\n")
    nb = _notebook(root / "book" / "ch_x.ipynb", 'claims = Claims("ch_x", settings)')  # a page that checks claims
    sweep_dir = tmp_path / "sweeps"
    current = {"library_modules": [], **sweeps.source_hashes(nb, [])}
    for seed, value in enumerate((0.9, 0.7, 0.8)):
        sweep.merge_run("ch_x", {**_record(seed, value), **current}, sweep_dir)
    text = build.robustness_markdown(root, sweep_dir)
    assert "| a | > 0.5 | 0.9 | 0.7 | 0.8 | 0.7 | 0.8 | 0.9 | 3/3 | 0 |" in text
    assert "; current" in text
    _notebook(nb, 'claims = Claims("ch_x", settings)\nx = 2')  # the code changed: the records are stale
    assert "3 of 3 runs are stale" in build.robustness_markdown(root, sweep_dir)


def test_pages_that_check_no_claims_are_neither_swept_nor_on_the_robustness_page(tmp_path):
    """The summary and the FAQ quote other pages' sweeps and run no experiment: nothing to sweep, nothing to show."""
    root = tmp_path / "book_root"
    (root / "book").mkdir(parents=True)
    (root / "_toc.yml").write_text("root: book/ch_x\nchapters:\n  - file: book/ch_y\n")
    _notebook(root / "book" / "ch_x.ipynb", 'claims = Claims("ch_x", settings)')
    _notebook(root / "book" / "ch_y.ipynb", 'findings.glue_finding("a", "ch_x", claim="a")')
    assert [p.stem for p in sweep.select_pages(None, root)] == ["ch_x"]
    text = build.robustness_markdown(root, tmp_path / "sweeps")
    assert "## ch_x" in text and "ch_y" not in text


def test_outside_git_the_commit_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv(sweep.COMMIT_ENV, raising=False)
    assert sweep.git_commit(tmp_path) is None, "not a checkout, and nothing said which commit it is"
    monkeypatch.setenv(sweep.COMMIT_ENV, "24ebf94")
    assert sweep.git_commit(tmp_path) == "24ebf94"

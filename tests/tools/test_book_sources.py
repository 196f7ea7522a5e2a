"""Checks on the book's sources that take seconds: notebook hygiene, the page contract, environment files."""

import json
import re
import tomllib
from pathlib import Path

import pytest
import yaml

from halluc_lib.core.files import SHIPPED, load_shipped
from halluc_lib.tools import build

ROOT = build.ROOT
NOTEBOOKS = build.notebooks()


def _cells(path):
    return json.loads(path.read_text())["cells"]


def _source(cell):
    return "".join(cell["source"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs(path):
    for cell in _cells(path):
        if cell["cell_type"] == "code":
            assert not cell.get("outputs") and cell.get("execution_count") is None, _source(cell)[:60]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_follows_the_page_contract(path):
    cells = _cells(path)
    params = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1, "exactly one cell tagged `parameters`"
    for name, default in (("seed", "0"), ("scale", '"quick"'), ("device", '"auto"')):
        assert re.search(rf"^{name} = {re.escape(default)}$", _source(params[0]), re.M), name
    text = "\n".join(_source(c) for c in cells)
    assert "Runs in" in text, "states its CPU run time"
    assert "{glue:text}" in text, "quotes computed numbers"
    assert "{cite}" in text, "cites its sources"
    code = "\n".join(_source(c) for c in cells if c["cell_type"] == "code")
    if "Claims(" in code:
        assert ".finish()" in code, "ends with claims"
    else:  # a page that runs no experiment (the summary, the FAQ) quotes other pages' sweeps, and checks where from
        assert "findings.glue_finding(" in code and "findings.provenance(" in code, "ends with claims or provenance"
    exercises = re.findall(r"```\{exercise\}\n:label: (\S+)", text)
    solutions = re.findall(r"```\{solution-start\} (\S+)", text)
    assert len(exercises) >= 3 and sorted(exercises) == sorted(solutions)
    assert text.count("{solution-start}") == text.count("{solution-end}")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_markdown_holds_no_control_characters(path):
    """A control character in prose is a typing accident, e.g. a TAB where ``\\times`` was meant ("\\t" read as an
    escape when the notebook's JSON was written by hand); only newlines belong there."""
    for index, cell in enumerate(_cells(path)):
        if cell["cell_type"] == "markdown":
            text = _source(cell)
            found = re.search(r"[\x00-\x09\x0b-\x1f\x7f]", text)
            assert not found, f"cell {index}: {text[max(found.start() - 30, 0) : found.end()]!r}"


def test_every_cited_key_is_in_the_bibliography():
    bib = (ROOT / "book" / "references.bib").read_text()
    keys = set(re.findall(r"@\w+\{([^,]+),", bib))
    pages = [p.read_text() for p in (ROOT / "book").glob("*.md")] + [
        "\n".join(_source(c) for c in _cells(p)) for p in NOTEBOOKS
    ]
    cited = {k.strip() for page in pages for group in re.findall(r"\{cite\}`([^`]+)`", page) for k in group.split(",")}
    assert cited and cited <= keys, cited - keys


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = set(project["dependencies"])
    for extra in ("book", "dev"):
        wanted |= set(project["optional-dependencies"][extra])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    options = {entry for entry in pip if entry.startswith("-")}
    assert set(pip) - options == wanted
    # Binder's torch must be a CPU build: PyPI's is CUDA's (multi-GB); PyTorch's CPU index is named before torch
    cpu_index = "--extra-index-url https://download.pytorch.org/whl/cpu"
    assert cpu_index in pip and pip.index(cpu_index) < next(i for i, e in enumerate(pip) if e.startswith("torch"))
    assert options == {"-e .", cpu_index}
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    minimum = project["requires-python"].removeprefix(">=")
    assert tuple(map(int, python.split("=")[1].split("."))) >= tuple(map(int, minimum.split(".")))


def test_transformers_and_jupyter_book_are_bounded():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    text = json.dumps(deps)
    assert "transformers>=5,<6" in text and "jupyter-book>=1.0.4,<2" in text
    assert not re.search(r'"[a-z-]+==', text), "ranges in pyproject, exact pins only in environment files"


def test_config_sets_one_repository_url_and_offline_math():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["repository"]["url"].startswith("https://")
    assert "sphinx-mathjax-offline" in config["sphinx"]["extra_extensions"]
    assert config["execute"]["execute_notebooks"] == "off"


TYPED_RESULT = re.compile(
    r"\babout \d+ ?(s|seconds|minutes)\b|\b\d+ s (on|alone|after)\b|\bseeds? \d+ ?(,|–|-|to|and) ?\d"
    r"|\bin (one|two|three) (seed|seeds) of\b"
)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_markdown_types_no_run_time_and_no_per_seed_result(path):
    """Run times and results of other seeds come from the page's sweep file (glue), never typed."""
    for index, cell in enumerate(_cells(path)):
        if cell["cell_type"] == "markdown":
            found = TYPED_RESULT.search(_source(cell))
            assert not found, f"cell {index}: {_source(cell)[max(found.start() - 40, 0) : found.end() + 20]!r}"


def test_readme_lists_every_chapter_notebook():
    readme = (ROOT / "README.md").read_text()
    for nb in NOTEBOOKS:
        assert nb.name in readme


def test_public_api_needs_no_network(tmp_path, monkeypatch):
    """world -> tokenizer -> model -> train -> probe with every outbound socket refused."""
    import pytest_socket
    import torch

    from halluc_lib.core import batching, models, probe, train, world
    from halluc_lib.core.tokenizer import world_tokenizer

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # would allow downloads, if anything tried
    pytest_socket.disable_socket()
    try:
        w = world.bucket_world((0, 2), per_bucket=3, seed=0)
        tok = world_tokenizer(w)
        torch.manual_seed(0)
        model = models.tiny_gpt(tok, n_layer=1, n_embd=32, n_head=2, n_positions=64)
        batches = batching.LMBatches.from_texts(world.build_corpus(w), tok, batch_size=2)
        train.train(model, batches, train.TrainConfig(steps=3), device="cpu", progress=False, checkpoint_dir=tmp_path)
        answers = probe.answer_probes(model, tok, world.make_probes(w), device="cpu")
        assert len(answers) == 6 * 4
        with pytest.raises(pytest_socket.SocketBlockedError):
            import socket

            socket.socket().connect(("127.0.0.1", 9))
    finally:
        pytest_socket.enable_socket()


def test_data_cards_exist_for_shipped_data():
    for path in (ROOT / "data").glob("*.json"):
        assert path.with_suffix(".md").exists(), f"{path.name} has no data card"
    assert Path(ROOT / "data" / "README.md").exists()


def test_every_shipped_dataset_loads_through_load_shipped():
    names = {p.stem.rsplit("_seed", 1)[0] for p in (ROOT / "data").glob("*_seed*.json")}
    assert names == set(SHIPPED)
    for name in SHIPPED:
        # read as package data (halluc_lib/shipped, in the repository a link to data/)
        path = load_shipped(name, 0).path
        assert path.parent == ROOT / "halluc_lib" / "shipped"
        assert path.resolve() == ROOT / "data" / f"{name}_seed0.json"
        assert load_shipped(name, 99) is None  # the book ships seed 0 only
    with pytest.raises(ValueError, match="name must be one of"):
        load_shipped("weather", 0)


def test_shipped_world_equals_the_generated_one():
    from halluc_lib.core import world

    shipped = world.load_world(ROOT / "data" / "exposure_world_seed0.json")
    assert shipped == world.bucket_world((0, 1, 2, 4, 8, 16, 32, 64), 150, seed=0, n_templates=4)


def test_shipped_recommender_logs_equal_the_generated_ones():
    from halluc_lib.chapters import recommender

    card = load_shipped("recsys_popularity", 0).card
    generated = recommender.simulate_logs(recommender.Config(), seed=0)
    assert card["sha256"] == recommender.data_card(generated)["sha256"]


def test_shipped_finance_task_equals_the_generated_one():
    from halluc_lib.datasets import finance

    shipped = finance.task_from_data(load_shipped("finance_sentiment", 0).data)
    generated = finance.finance_task(seed=0)
    assert all(shipped[split].equals(generated[split]) for split in generated)


def test_shipped_medicine_data_equal_the_generated_ones():
    from halluc_lib.chapters import medicine

    card = load_shipped("medicine_notes", 0).card
    config = medicine.Config()
    assert card["sha256"] == medicine.data_card(medicine.make_data(config, seed=0), config, 0)["sha256"]

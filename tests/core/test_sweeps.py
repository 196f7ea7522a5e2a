import json

import pytest

from halluc_lib.core import sweeps


def _run(seed, value, *, scale="quick", device="cpu", wall=10.0, gain=None):
    return {
        "page": "ch_x",
        "seed": seed,
        "scale": scale,
        "device": device,
        "wall_seconds": wall,
        "claims": [
            {
                "name": "acc",
                "value": value,
                "comparison": ">=",
                "threshold": 0.5,
                "passed": value >= 0.5,
                "baseline": 0.1,
                "kind": "finding",
            }
        ],
        "measurements": {} if gain is None else {"gain": gain},
    }


def _write(tmp_path, runs):
    (tmp_path / "ch_x.json").write_text(json.dumps({"page": "ch_x", "runs": runs}))


def test_runs_are_chosen_by_scale_and_device_kind_and_sorted_by_seed(tmp_path):
    _write(tmp_path, [_run(2, 0.7), _run(0, 0.9), _run(0, 0.8, scale="full", device="cuda:0")])
    assert [r["seed"] for r in sweeps.runs("ch_x", "quick", sweep_dir=tmp_path)] == [0, 2]
    assert [r["value"] for r in sweeps.runs("ch_x", "full", "cuda", tmp_path)[0]["claims"]] == [0.8]
    assert sweeps.runs("ch_x", "full", "cpu", tmp_path) == []
    assert sweeps.runs("missing", sweep_dir=tmp_path) == []
    table = sweeps.claim_table(sweeps.runs("ch_x", sweep_dir=tmp_path))
    assert list(table.value) == [0.9, 0.7] and list(table.seed) == [0, 2]


def test_spread_and_glue_spread_quote_min_median_max(tmp_path, monkeypatch):
    assert sweeps.spread([3, 1, 2, 10]) == {"min": 1.0, "median": 2.5, "max": 10.0}
    with pytest.raises(ValueError, match="no values"):
        sweeps.spread([])
    _write(
        tmp_path, [_run(0, 0.9, wall=30, gain=0.2), _run(1, 0.8, wall=50, gain=0.4), _run(2, 0.7, wall=40, gain=0.3)]
    )
    glued = {}
    monkeypatch.setattr(sweeps, "glue", lambda name, value: glued.update({name: value}))
    table = sweeps.glue_spread("ch_x", sweep_dir=tmp_path)
    assert table.loc["gain"].tolist() == [0.2, 0.3, 0.4]
    assert glued == {
        "sweep_gain_min": 0.2,
        "sweep_gain_median": 0.3,
        "sweep_gain_max": 0.4,
        "sweep_seeds": 3,
        "sweep_seconds": 40,
    }
    with pytest.warns(UserWarning, match="make seeds PAGES=ch_y"):
        assert sweeps.glue_spread("ch_y", sweep_dir=tmp_path).empty


def test_records_are_stale_when_the_code_they_ran_changes(tmp_path):
    lib = tmp_path / "lib"
    (lib / "core").mkdir(parents=True)
    (lib / "core" / "a.py").write_text("x = 1\n")
    (lib / "core" / "unused.py").write_text("y = 1\n")
    nb = tmp_path / "page.ipynb"
    cells = [{"cell_type": "markdown", "source": ["prose"]}, {"cell_type": "code", "source": ["x = 1"]}]
    nb.write_text(json.dumps({"cells": cells}))
    modules = ["halluc_lib.core.a"]
    record = {"library_modules": modules, **sweeps.source_hashes(nb, modules, lib)}
    assert not sweeps.is_stale(record, nb, lib)
    # prose, and library modules the run did not import, do not change what the page computed
    cells[0]["source"] = ["other prose"]
    nb.write_text(json.dumps({"cells": cells}))
    (lib / "core" / "unused.py").write_text("y = 2\n")
    assert not sweeps.is_stale(record, nb, lib)
    (lib / "core" / "a.py").write_text("x = 2\n")
    assert sweeps.is_stale(record, nb, lib)
    (lib / "core" / "a.py").write_text("x = 1\n")
    cells[1]["source"] = ["x = 2"]
    nb.write_text(json.dumps({"cells": cells}))
    assert sweeps.is_stale(record, nb, lib)


def test_the_loaded_library_modules_are_the_ones_a_run_imported():
    import halluc_lib.chapters.good_turing  # noqa: F401

    loaded = sweeps.loaded_library_modules()
    assert "halluc_lib.chapters.good_turing" in loaded and "halluc_lib.core.sweeps" in loaded
    assert not any(name.startswith("halluc_lib.tools") for name in loaded)


def test_device_kind():
    assert [sweeps.device_kind(d) for d in ("cuda:0", "cuda", "cpu", None)] == ["cuda", "cuda", "cpu", "cpu"]


def test_documentation_and_the_install_cell_do_not_make_a_record_stale(tmp_path):
    lib = tmp_path / "lib"
    (lib / "core").mkdir(parents=True)
    module = lib / "core" / "a.py"
    module.write_text('"""What a computes."""\n\n\ndef f(x):\n    """Twice x."""\n    return 2 * x  # doubled\n')
    nb = tmp_path / "page.ipynb"
    install = {"cell_type": "code", "metadata": {"tags": [sweeps.INSTALL_TAG]}, "source": ["%pip install x"]}
    cells = [install, {"cell_type": "code", "metadata": {}, "source": ["x = 1"]}]
    nb.write_text(json.dumps({"cells": cells}))
    modules = ["halluc_lib.core.a"]
    record = {"library_modules": modules, **sweeps.source_hashes(nb, modules, lib)}
    # reworded docstrings, comments and layout, and another install cell: the same computation
    module.write_text('"""What a computes, said better."""\n\n\ndef f(x):\n    """x doubled."""\n\n    return 2 * x\n')
    install["source"] = ["%pip install y"]
    nb.write_text(json.dumps({"cells": cells}))
    assert not sweeps.is_stale(record, nb, lib)
    # a function left with its docstring alone still parses to the same tree as before the change below
    module.write_text('"""What a computes."""\n\n\ndef f(x):\n    """Twice x."""\n    return 3 * x\n')
    assert sweeps.is_stale(record, nb, lib)


def test_a_module_that_does_not_parse_is_fingerprinted_as_it_is():
    assert sweeps.code_fingerprint(b"def (:") == b"def (:"
    assert sweeps.code_fingerprint(b'def f():\n    """doc"""\n') == sweeps.code_fingerprint(b"def f():\n    pass\n")

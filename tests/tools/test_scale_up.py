from dataclasses import dataclass

import pandas as pd
import pytest

from halluc_lib.tools import scale_up


@dataclass
class Inner:
    curve: pd.DataFrame
    note: str


@dataclass
class Outer:
    table: pd.DataFrame
    inner: Inner
    count: int


def test_tables_of_finds_every_frame_one_level_down():
    a, b = pd.DataFrame({"x": [1]}), pd.DataFrame({"y": [2]})
    found = scale_up.tables_of(Outer(a, Inner(b, "n"), 3))
    assert list(found) == ["table", "inner.curve"] and found["inner.curve"] is b


def test_scale_up_names_the_chapters_it_accepts():
    with pytest.raises(ValueError, match=r"chapter must be one of \(.*'exposure'"):
        scale_up.scale_up("nowhere")


def test_one_process_runs_a_chapter_and_writes_its_tables(tmp_path, capsys):
    tables = scale_up.scale_up("good_turing", scale="quick", seed=1, out=tmp_path)
    assert tables and all(isinstance(t, pd.DataFrame) for t in tables.values())
    written = sorted(p.name for p in tmp_path.glob("good_turing_quick_seed1_*.csv"))
    assert written == sorted(f"good_turing_quick_seed1_{name}.csv" for name in tables)
    first = next(iter(tables))
    assert pd.read_csv(tmp_path / f"good_turing_quick_seed1_{first}.csv").shape == tables[first].shape

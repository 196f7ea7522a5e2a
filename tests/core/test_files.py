import json

import pytest

from halluc_lib.core import files as datafiles


def test_atomic_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "f.txt"
    datafiles.atomic_write_text(target, "old")

    with pytest.raises(TypeError):
        datafiles.atomic_write_text(target, 123)  # type: ignore[arg-type]
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_save_with_card_sets_the_checksum_and_writes_the_card(tmp_path):
    path = datafiles.save_with_card(tmp_path / "d.json", {"b": [1, 2], "a": 1}, {"what": "numbers"}, key="numbers")
    data, card = datafiles.load_with_card(path, "numbers", key="numbers")
    assert data == {"a": 1, "b": [1, 2]} and card["sha256"] == datafiles.content_sha256({"a": 1, "b": [1, 2]})
    assert (tmp_path / "d.md").read_text().splitlines()[:3] == ["# Data card: d.json", "", "- **what**: numbers"]
    payload = json.loads(path.read_text())
    payload["numbers"]["a"] = 2
    path.write_text(json.dumps(payload))
    with pytest.raises(ValueError, match="checksum mismatch"):
        datafiles.load_with_card(path, "numbers", key="numbers")
    with pytest.raises(ValueError, match="is not a numbers file .expected keys 'card' and 'data'"):
        datafiles.load_with_card(path, "numbers")
    with pytest.raises(FileNotFoundError, match="path: no numbers file"):
        datafiles.load_with_card(tmp_path / "none.json", "numbers")

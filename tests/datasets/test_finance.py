import json

import pytest
import torch

from halluc_lib.core.batching import IGNORE_INDEX, MLMBatches
from halluc_lib.core.files import load_with_card
from halluc_lib.core.recipes import ModelSize
from halluc_lib.datasets import finance

TINY = ModelSize(2, 32, 4)


def test_polarity_flips_only_for_flipped_words():
    assert finance.polarity("good", "general") == finance.polarity("good", "finance") == 1
    assert finance.polarity("correction", "general") == 1 and finance.polarity("correction", "finance") == -1
    with pytest.raises(ValueError, match="domain must be one of"):
        finance.polarity("good", "law")
    with pytest.raises(ValueError, match="sentiment word"):
        finance.polarity("quiet", "finance")


def test_pretraining_sentences_agree_in_their_domain():
    corpus = finance.pretraining_corpus(300, finance_share=0.5, seed=1)
    finance_subjects = set(finance.SUBJECTS["finance"])
    n_finance = 0
    for text in corpus:
        words = text.split()
        domain = "finance" if words[0] in finance_subjects else "general"
        n_finance += domain == "finance"
        assert finance.polarity(words[2], domain) == finance.polarity(words[4], domain)
    assert 100 < n_finance < 200
    assert finance.pretraining_corpus(5, 0.1, seed=3) == finance.pretraining_corpus(5, 0.1, seed=3)
    with pytest.raises(ValueError, match="finance_share"):
        finance.pretraining_corpus(5, 1.5)


def test_finance_task_keeps_flipped_words_out_of_training():
    task = finance.finance_task(n_train=50, n_test=40, seed=0)
    assert not task["train"].flipped.any() and task["test"].flipped.sum() == 20
    row = task["test"][task["test"].word == "bull"]
    assert (row.label == 1).all()  # read in its finance sense
    with pytest.raises(ValueError, match="words"):
        finance.sentiment_sentences(3, [])


def test_task_roundtrip_refuses_tampering(tmp_path):
    task = finance.finance_task(n_train=10, n_test=10, seed=0)
    path = finance.save_task(task, tmp_path / "fin.json", seed=0)
    data, card = load_with_card(path, "finance task")
    loaded = finance.task_from_data(data)
    assert loaded["test"].equals(task["test"]) and card["sizes"] == {"train": 10, "test": 10}
    payload = json.loads(path.read_text())
    payload["data"]["train"]["label"][0] = 1 - payload["data"]["train"]["label"][0]
    path.write_text(json.dumps(payload))
    with pytest.raises(ValueError, match="checksum mismatch"):
        load_with_card(path, "finance task")


def test_load_task_is_the_shipped_copy_for_seed_0_and_generated_otherwise():
    shipped = finance.load_task(0)
    assert shipped["test"].equals(finance.finance_task(seed=0)["test"])
    assert finance.load_task(3)["train"].equals(finance.finance_task(seed=3)["train"])


def test_mlm_batches_mask_afresh_and_repeat_exactly():
    tok = finance.tokenizer_for_finance()
    ids = finance.encode(finance.pretraining_corpus(64, 0.5), tok)
    batches = MLMBatches(ids, tok, batch_size=32, probability=0.3, seed=0)
    a, b = batches.batch(0, 0), batches.batch(0, 0)
    assert torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["labels"], b["labels"])
    assert not torch.equal(batches.batch(1, 0)["labels"], a["labels"])
    selected = a["labels"] != IGNORE_INDEX
    assert selected.any() and not (a["labels"][:, 0] != IGNORE_INDEX).any()  # <cls> is never masked
    assert batches.batches_per_epoch() == 2


def test_encode_needs_equal_lengths():
    tok = finance.tokenizer_for_finance()
    with pytest.raises(ValueError, match="same number of tokens"):
        finance.encode(["stock : good and quiet", "stock ."], tok)


def test_config_checks():
    with pytest.raises(ValueError, match="finance_shares"):
        finance.PretrainConfig(finance_shares=())
    with pytest.raises(ValueError, match="steps"):
        finance.PretrainConfig(steps=0)
    assert finance.PretrainConfig.for_scale("full").steps > finance.PretrainConfig().steps
    assert finance.PretrainConfig.for_scale("full").size == ModelSize.for_scale("full")


def test_pretraining_is_cached_by_corpus(tmp_path, monkeypatch):
    monkeypatch.setenv("HALLUC_CACHE", str(tmp_path))
    tok = finance.tokenizer_for_finance()
    config = finance.PretrainConfig(sentences=50, steps=2, size=TINY, batch_size=16)
    corpus = finance.pretraining_corpus(50, 0.3)
    first = finance.pretrain_mlm(tok, corpus, config, device="cpu")
    assert len(list(tmp_path.iterdir())) == 1
    again = finance.pretrain_mlm(tok, corpus, config, device="cpu")
    assert torch.equal(first.bert.embeddings.word_embeddings.weight, again.bert.embeddings.word_embeddings.weight)
    finance.pretrain_mlm(tok, finance.pretraining_corpus(50, 0.1), config, device="cpu")
    assert len(list(tmp_path.iterdir())) == 2
    mlms = finance.pretrained_mlms(tok, config, shares=(0.3,), device="cpu")
    assert list(mlms) == ["30% finance"] and len(list(tmp_path.iterdir())) == 2  # the same corpus: from the cache

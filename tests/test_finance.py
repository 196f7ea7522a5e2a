import json

import pandas as pd
import pytest
import torch

from halluc_lib import finance
from halluc_lib.batching import MLMBatches
from halluc_lib.objectives import IGNORE_INDEX


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
    loaded, card = finance.load_task(path)
    assert loaded["test"].equals(task["test"]) and card["sizes"] == {"train": 10, "test": 10}
    payload = json.loads(path.read_text())
    payload["data"]["train"]["label"][0] = 1 - payload["data"]["train"]["label"][0]
    path.write_text(json.dumps(payload))
    with pytest.raises(ValueError, match="checksum mismatch"):
        finance.load_task(path)
    with pytest.raises(FileNotFoundError):
        finance.load_task(tmp_path / "none.json")
    (tmp_path / "x.json").write_text("[]")
    with pytest.raises(ValueError, match="not a finance task file"):
        finance.load_task(tmp_path / "x.json")


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
        finance.FinanceConfig(finance_shares=())
    with pytest.raises(ValueError, match="pretrain_steps"):
        finance.FinanceConfig(pretrain_steps=0)
    assert finance.FinanceConfig.for_scale("full").pretrain_steps > finance.FinanceConfig().pretrain_steps
    with pytest.raises(TypeError, match="FinanceConfig"):
        finance.run_finance({})


def test_run_finance_end_to_end():
    config = finance.FinanceConfig(
        finance_shares=(0.3,), pretrain_sentences=200, pretrain_steps=2, finetune_steps=2, hidden=32, batch_size=16
    )
    task = finance.finance_task(n_train=32, n_test=20, seed=0)
    run = finance.run_finance(config, seed=0, device="cpu", task=task)
    table = finance.summary(run)
    assert list(table.index) == ["random init", "30% finance"]
    assert table.accuracy.between(0, 1).all()
    assert isinstance(run.predictions, pd.DataFrame) and len(run.predictions) == 40


def test_read_senses_reports_every_word_in_both_domains():
    tok = finance.tokenizer_for_finance()
    config = finance.FinanceConfig(pretrain_sentences=100, pretrain_steps=1, hidden=32, batch_size=16)
    mlm = finance.pretrain(tok, finance.pretraining_corpus(100, 0.3), config, device="cpu")
    senses = finance.read_senses(mlm, tok)
    assert len(senses) == 2 * len(finance.FLIPPED) and senses.p_positive.between(0, 1).all()
    assert set(senses.domain) == set(finance.DOMAINS)


def test_cloze_classifier_reads_the_label_words_at_the_mask():
    tok = finance.tokenizer_for_finance()
    config = finance.FinanceConfig(pretrain_sentences=100, pretrain_steps=1, finetune_steps=2, hidden=32, batch_size=16)
    mlm = finance.pretrain(tok, finance.pretraining_corpus(100, 0.3), config, device="cpu")
    task = finance.finance_task(n_train=32, n_test=12, seed=0)
    assert finance.cloze_texts(task["test"].iloc[:1])[0].endswith("and good")
    model = finance.fine_tune_cloze(tok, task["train"], config, start_from=mlm, seed=0, device="cpu")
    predictions = finance.predict_cloze(model, tok, task["test"])
    assert predictions.confidence.between(0.5, 1).all() and len(predictions) == 12
    assert not any(p.requires_grad is False for p in mlm.parameters()) and model.mlm is not mlm  # a copy


def test_pretraining_is_cached_by_corpus(tmp_path, monkeypatch):
    monkeypatch.setenv("HALLUC_CACHE", str(tmp_path))
    tok = finance.tokenizer_for_finance()
    config = finance.FinanceConfig(pretrain_sentences=50, pretrain_steps=2, hidden=32, batch_size=16)
    corpus = finance.pretraining_corpus(50, 0.3)
    first = finance.pretrain(tok, corpus, config, device="cpu")
    assert len(list(tmp_path.iterdir())) == 1
    again = finance.pretrain(tok, corpus, config, device="cpu")
    assert torch.equal(first.bert.embeddings.word_embeddings.weight, again.bert.embeddings.word_embeddings.weight)
    finance.pretrain(tok, finance.pretraining_corpus(50, 0.1), config, device="cpu")
    assert len(list(tmp_path.iterdir())) == 2

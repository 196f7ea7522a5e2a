import pytest

from halluc_lib.chapters import finance
from halluc_lib.core.recipes import ModelSize
from halluc_lib.datasets.finance import (
    DOMAINS,
    FLIPPED,
    PretrainConfig,
    finance_task,
    pretrain_mlm,
    pretraining_corpus,
    tokenizer_for_finance,
)

PRETRAIN = PretrainConfig(finance_shares=(0.3,), sentences=200, steps=2, size=ModelSize(2, 32, 4), batch_size=16)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HALLUC_CACHE", str(tmp_path))


def test_config_checks():
    with pytest.raises(ValueError, match="finetune_steps"):
        finance.Config(finetune_steps=0)
    with pytest.raises(TypeError, match="pretraining must be a PretrainConfig"):
        finance.Config(pretraining={})
    assert finance.Config.for_scale("full").pretraining == PretrainConfig.for_scale("full")
    with pytest.raises(TypeError, match="config must be a finance.Config"):
        finance.run({})


def test_run_end_to_end():
    run = finance.run(finance.Config(PRETRAIN, finetune_steps=2), seed=0, device="cpu")
    table = finance.summary(run)
    assert list(table.index) == ["random init", "30% finance"]
    assert len(run.predictions) == 2 * len(run.task["test"])
    by_hand = run.predictions[run.predictions.pretraining == "30% finance"].correct.mean()
    assert table.accuracy["30% finance"] == pytest.approx(by_hand)


def test_read_senses_reports_every_word_in_both_domains():
    tok = tokenizer_for_finance()
    mlm = pretrain_mlm(tok, pretraining_corpus(100, 0.3), PRETRAIN, device="cpu")
    senses = finance.read_senses(mlm, tok)
    assert len(senses) == 2 * len(FLIPPED) and set(senses.domain) == set(DOMAINS)
    assert (senses.reads_as == senses.p_positive.gt(0.5).map({True: 1, False: -1})).all()


def test_cloze_classifier_reads_the_label_words_at_the_mask():
    tok = tokenizer_for_finance()
    mlm = pretrain_mlm(tok, pretraining_corpus(100, 0.3), PRETRAIN, device="cpu")
    task = finance_task(n_train=32, n_test=12, seed=0)
    assert finance.cloze_texts(task["test"].iloc[:1])[0].endswith("and good")
    config = finance.Config(PRETRAIN, finetune_steps=2)
    model = finance.fine_tune_cloze(tok, task["train"], config, start_from=mlm, seed=0, device="cpu")
    predictions = finance.predict_cloze(model, tok, task["test"])
    assert predictions.confidence.between(0.5, 1).all() and len(predictions) == 12  # the larger of two
    assert model.mlm is not mlm  # fine-tuning works on a copy

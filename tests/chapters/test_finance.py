from types import SimpleNamespace

import numpy as np
import pytest
import torch

from halluc_lib.chapters import finance
from halluc_lib.core.recipes import ModelSize
from halluc_lib.datasets.finance import (
    DOMAINS,
    FLIPPED,
    SHARED,
    SUBJECTS,
    PretrainConfig,
    encode,
    finance_task,
    polarity,
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


class SubjectReader(torch.nn.Module):
    """A stand-in masked LM that reads a sentence by its subject: at a masked position it puts the positive
    sentiment words far ahead after a finance subject and the negative ones after any other."""

    def __init__(self, tok):
        super().__init__()
        self.size, self.mask_id = len(tok), tok.mask_token_id
        self.finance = torch.tensor(tok.convert_tokens_to_ids(list(SUBJECTS["finance"])))
        self.positive = tok.convert_tokens_to_ids([w for w, s in SHARED.items() if s > 0])
        self.negative = tok.convert_tokens_to_ids([w for w, s in SHARED.items() if s < 0])

    def forward(self, input_ids):
        logits = torch.zeros(*input_ids.shape, self.size)
        sign = torch.isin(input_ids[:, 1], self.finance).float() * 2 - 1  # +1 after a finance subject
        lift = 5 * sign[:, None] * (input_ids == self.mask_id)  # only at masked positions
        logits[..., self.positive] += lift[..., None]
        logits[..., self.negative] -= lift[..., None]
        return SimpleNamespace(logits=logits)


def test_read_senses_asks_the_masked_partner_after_each_domains_subjects():
    tok = tokenizer_for_finance()
    senses = finance.read_senses(SubjectReader(tok), tok)
    assert len(senses) == 2 * len(FLIPPED) and set(senses.domain) == set(DOMAINS)
    finance_rows = senses.domain == "finance"
    # the partner word is masked (else the reader returns even odds) and the subject reaches the model
    assert (senses.p_positive[finance_rows] > 0.99).all() and (senses.p_positive[~finance_rows] < 0.01).all()
    # a word is read right where its polarity in that domain is the one the reader gives the domain
    reader = {"finance": 1, "general": -1}
    expected = [polarity(w, d) == reader[d] for w, d in zip(senses.word, senses.domain, strict=True)]
    assert senses.right.tolist() == expected


def test_cloze_classifier_reads_the_label_words_at_the_masked_partner():
    tok = tokenizer_for_finance()
    mlm = pretrain_mlm(tok, pretraining_corpus(100, 0.3), PRETRAIN, device="cpu").eval()
    task = finance_task(n_train=32, n_test=12, seed=0)
    assert finance.cloze_texts(task["test"].iloc[:1])[0].endswith("and good")
    ids = encode(finance.cloze_texts(task["test"]), tok)  # <cls> subject : word and good <sep>
    classifier = finance.ClozeClassifier(mlm, tok).eval()
    with torch.inference_mode():
        logits = classifier(input_ids=ids).logits
        masked = ids.clone()
        masked[:, -2] = tok.mask_token_id
        by_hand = mlm(input_ids=masked).logits[:, -2][:, tok.convert_tokens_to_ids(list(finance.LABEL_WORDS))]
        other_partner = ids.clone()
        other_partner[:, -2] = tok.convert_tokens_to_ids("bad")
        other_word = ids.clone()
        other_word[:, 3] = tok.convert_tokens_to_ids("terrible")
        partner_logits = classifier(input_ids=other_partner).logits
        word_logits = classifier(input_ids=other_word).logits
    torch.testing.assert_close(logits, by_hand)
    torch.testing.assert_close(partner_logits, logits)  # the placeholder partner never reaches the prediction
    assert not torch.allclose(word_logits, logits)  # the sentence's sentiment word does

    config = finance.Config(PRETRAIN, finetune_steps=2)
    model = finance.fine_tune_cloze(tok, task["train"], config, start_from=mlm, seed=0, device="cpu")
    assert model.mlm is not mlm  # fine-tuning works on a copy
    predictions = finance.predict_cloze(model, tok, task["test"])
    with torch.inference_mode():
        probs = model(input_ids=ids).logits.softmax(-1)
    assert predictions.predicted.tolist() == probs.argmax(-1).tolist()
    np.testing.assert_allclose(predictions.confidence, probs.max(-1).values.numpy(), rtol=1e-5)
    assert (predictions.correct == (predictions.predicted == predictions.label)).all()

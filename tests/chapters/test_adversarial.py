import pytest
import torch
from torch import nn

from halluc_lib.chapters import adversarial
from halluc_lib.core import classify, models
from halluc_lib.core.tokenizer import build_tokenizer
from halluc_lib.datasets import sentences


@pytest.fixture(scope="module")
def review_tok():
    return build_tokenizer(sentences.review_vocabulary())


@pytest.fixture(scope="module")
def reviews(review_tok):
    return sentences.encode_sentences(sentences.review_sentences(64, seed=0), review_tok)


def test_perturbation_stays_in_each_tokens_ball(review_tok, reviews):
    torch.manual_seed(0)
    model = models.tiny_bert_classifier(review_tok, 2, n_layer=1, hidden=32, n_head=2)
    emb = model.get_input_embeddings()(reviews["input_ids"][:8]).detach()
    for objective, steps in (("loss", 1), ("margin", 5)):
        delta = adversarial.perturbation(
            model, emb, reviews["labels"][:8], epsilon=0.3, steps=steps, objective=objective, straight_through=True
        )
        assert (delta.norm(dim=-1) <= 0.3 * emb.norm(dim=-1) + 1e-5).all()
        assert delta.abs().sum() > 0
    assert isinstance(model.bert.pooler.activation, nn.Tanh), "the straight-through swap is undone"
    with pytest.raises(ValueError, match="objective must be"):
        adversarial.perturbation(model, emb, reviews["labels"][:8], epsilon=0.1, objective="hinge")
    with pytest.raises(ValueError, match="epsilon must be a number >= 0"):
        adversarial.perturbation(model, emb, reviews["labels"][:8], epsilon=-1)


def test_adversarial_loss_with_zero_radius_is_the_clean_loss(review_tok, reviews):
    torch.manual_seed(0)
    model = models.tiny_bert_classifier(review_tok, 2, n_layer=1, hidden=32, n_head=2)
    batch = {k: reviews[k][:8] for k in ("input_ids", "attention_mask", "labels")}
    clean = model(**batch).loss
    assert torch.allclose(adversarial.AdversarialLoss(model, "FGM", 0.0)(**batch).loss, clean)
    assert adversarial.AdversarialLoss(model, "PGD", 0.5)(**batch).loss > clean
    with pytest.raises(ValueError, match="method must be one of"):
        adversarial.AdversarialLoss(model, "plain", 0.1)


def test_attacked_accuracy_at_zero_is_clean_accuracy(review_tok, reviews):
    model = adversarial.train_classifier(review_tok, reviews, "plain", steps=3).model
    assert adversarial.attacked_accuracy(model, reviews, epsilon=0) == classify.accuracy(model, reviews)
    assert adversarial.attacked_accuracy(model, reviews, epsilon=1.0, steps=3) <= classify.accuracy(model, reviews)
    tuned = adversarial.train_classifier(review_tok, reviews, "FGM", epsilon=0.1, steps=2, start_from=model)
    assert tuned.model is not model and tuned.result.steps == 2
    with pytest.raises(ValueError, match="method must be one of"):
        adversarial.train_classifier(review_tok, reviews, "free")


def test_experiments_run_end_to_end():
    run = adversarial.compare_robustness(attack_epsilons=(0.0, 0.2), steps=2, n_train=64)
    assert set(run.accuracy.method) == set(adversarial.METHODS)
    assert run.cost.set_index("method").loc["plain", "time_ratio"] == 1.0
    table = adversarial.shortcut_under_pgd(steps=2)
    assert set(table.marker_agreement) == {0.95, 0.05}

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


def test_adversarial_training_costs_extra_passes(review_tok, reviews):
    """The compute the page measures: a training step runs the classifier once plainly, three times with FGM
    (clean, one ascent step, perturbed) and five times with three-step PGD."""
    torch.manual_seed(0)
    model = models.tiny_bert_classifier(review_tok, 2, n_layer=1, hidden=32, n_head=2)
    batch = {k: reviews[k][:8] for k in ("input_ids", "attention_mask", "labels")}
    calls = []
    handle = model.register_forward_hook(lambda *_: calls.append(1))
    try:
        model(**batch)
        assert len(calls) == 1
        for method, passes in (("FGM", 3), ("PGD", 5)):
            calls.clear()
            adversarial.AdversarialLoss(model, method, 0.1)(**batch)
            assert len(calls) == passes, method
    finally:
        handle.remove()


def test_marker_reviews_agree_or_lie_as_asked(review_tok):
    """The shortcut's two test sets: the marker word names the review's (clean) label in about 95% and 5% of
    them."""
    marker_ids = torch.tensor(review_tok.convert_tokens_to_ids(list(sentences.MARKERS)))
    for agreement in (0.95, 0.05):
        data = adversarial.marker_reviews(review_tok, agreement, seed=0)
        names_label = data["input_ids"][:, -3] == marker_ids[data["labels"]]  # "... , <marker> . <sep>"
        assert abs(names_label.float().mean().item() - agreement) < 0.03


def test_experiments_run_end_to_end():
    config = adversarial.Config(epsilon=0.2, attack_epsilons=(0.0, 0.2), steps=2, shortcut_steps=2, n_train=64)
    result = adversarial.run(config, seed=0, device="cpu")
    run = result.robustness
    acc = run.accuracy.pivot(index="epsilon", columns="method", values="accuracy")
    assert set(acc.columns) == set(adversarial.METHODS)
    for method, model in run.models.items():
        # the table's clean accuracy is the model's accuracy measured without the attack code
        assert acc.loc[0.0, method] == classify.accuracy(model, run.test_data)
        assert acc.loc[0.2, method] <= acc.loc[0.0, method]
    lies = adversarial.marker_reviews(run.tokenizer, 0.05, seed=0)
    assert result.marker_lies_without_shortcut == classify.accuracy(run.models["PGD"], lies)
    (entry,) = adversarial.tradeoffs(result)  # the ledger reads the attack at the training radius
    assert entry.error == pytest.approx((1 - acc.loc[0.2, "plain"], 1 - acc.loc[0.2, "PGD"]))
    assert entry.accuracy == pytest.approx((acc.loc[0.0, "plain"], acc.loc[0.0, "PGD"]))

"""Adversarial training on word embeddings: FGM and PGD (chapter 4.2).

Text is discrete, so the adversary of Miyato et al. (2017) perturbs the *word embeddings*: it moves every
word vector by at most ``epsilon`` times its own length, in the direction that raises the loss
most. Training on those perturbed inputs as well as the clean ones makes the classifier's decision stable in a
neighbourhood of every training sentence.

* **FGM** (fast gradient method): one step, ``delta = epsilon * g / ||g||`` with ``g`` the loss gradient
  with respect to the embeddings.
* **PGD** (projected gradient descent, Madry et al. 2018; the inner loop FreeLB builds on, Zhu et al. 2020):
  ``steps`` smaller ascent steps, each projected back onto the ``epsilon`` ball — a stronger adversary, used
  both to attack at test time and to train against.

What this does *not* buy: robustness to a change in the data. A spurious marker word that predicts the label
in training is a real feature of every training sentence, not a perturbation of one, so an adversarially
trained model takes the shortcut just the same (measured in chapter 4.2).
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch
from torch import nn

from .runtime import check_positive_int, check_probability, model_device
from .shortcuts import MARKERS

METHODS = ("plain", "FGM", "PGD")

POSITIVE_WORDS = tuple("good great fine superb lovely bright warm solid clever pleasant".split())
NEGATIVE_WORDS = tuple("bad awful poor dull grim weak cold broken clumsy bitter".split())
NEUTRAL_WORDS = tuple("long short blue green old new tall small round plain".split())


def review_sentences(
    n: int, *, n_words: int = 6, marker_agreement: float | None = None, label_noise: float = 0.0, seed: int = 0
) -> pd.DataFrame:
    """Sentences "the review was W1 … Wk ." labelled 1 when positive words outnumber negative ones.

    Each word is positive, negative or neutral with equal probability; draws with a tie are redrawn, so the
    evidence is graded — a review may win by one word or by six — and a perturbation must change the meaning
    of several words to flip a clear one. ``label_noise`` flips that share of labels. With
    ``marker_agreement``, a marker word (chapter 2.3's ``"indeed"`` / ``"reportedly"``) is appended that agrees
    with the (possibly flipped) label with that probability: a shortcut, as in chapter 2.3.
    """
    n = check_positive_int("n", n)
    n_words = check_positive_int("n_words", n_words)
    check_probability("label_noise", label_noise)
    if marker_agreement is not None:
        check_probability("marker_agreement", marker_agreement)
    rng = np.random.default_rng([seed, 42])
    lists = (POSITIVE_WORDS, NEGATIVE_WORDS, NEUTRAL_WORDS)
    rows = []
    while len(rows) < n:
        kinds = rng.integers(3, size=n_words)
        balance = int((kinds == 0).sum() - (kinds == 1).sum())
        if balance == 0:
            continue
        words = " ".join(lists[k][rng.integers(len(lists[k]))] for k in kinds)
        label = int(balance > 0)
        if rng.random() < label_noise:
            label = 1 - label
        row = {"text": f"the review was {words} .", "label": label, "balance": balance, "marker_agrees": True}
        if marker_agreement is not None:
            agrees = bool(rng.random() < marker_agreement)
            row["text"] = f"the review was {words} , {MARKERS[label if agrees else 1 - label]} ."
            row["marker_agrees"] = agrees
        rows.append(row)
    return pd.DataFrame(rows)


def review_vocabulary() -> list[str]:
    """Every word of :func:`review_sentences`, for the tokenizer."""
    return ["the review was , .", *POSITIVE_WORDS, *NEGATIVE_WORDS, *NEUTRAL_WORDS, *MARKERS]


def _embed(model, input_ids: torch.Tensor) -> torch.Tensor:
    return model.get_input_embeddings()(input_ids)


class _StraightThroughTanh(nn.Module):
    """tanh forward, identity backward: the BPDA trick of Athalye et al. (2018) for a saturating layer."""

    def forward(self, x):
        return x + (torch.tanh(x) - x).detach()


@contextmanager
def _gradient_through_tanh(model: nn.Module):
    """Swap every ``nn.Tanh`` (BERT's pooler) for :class:`_StraightThroughTanh` while the adversary runs.

    A trained classifier drives its pooler's tanh into saturation, where the float32 gradient is exactly
    zero; an attack that follows that gradient stops moving and reports robustness that is not there."""
    swapped = []
    for module in model.modules():
        for name, child in module.named_children():
            if isinstance(child, nn.Tanh):
                setattr(module, name, _StraightThroughTanh())
                swapped.append((module, name, child))
    try:
        yield
    finally:
        for module, name, child in swapped:
            setattr(module, name, child)


def _per_token_normalize(g: torch.Tensor) -> torch.Tensor:
    return g / g.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def _project(delta: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    """Shrink each token's perturbation onto its ball of radius ``radius`` (same shape as delta, last dim 1)."""
    scale = (radius / delta.norm(dim=-1, keepdim=True).clamp_min(1e-12)).clamp(max=1.0)
    return delta * scale


def check_epsilon(epsilon) -> float:
    if not (isinstance(epsilon, (int, float)) and epsilon >= 0):
        raise ValueError(f"epsilon must be a number >= 0; got {epsilon!r}")
    return float(epsilon)


def perturbation(
    model,
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    *,
    epsilon: float,
    steps: int = 1,
    attention_mask: torch.Tensor | None = None,
    objective: str = "loss",
    straight_through: bool = False,
) -> torch.Tensor:
    """The worst-case perturbation of ``embeddings`` found by ``steps`` normalised gradient-ascent steps.

    ``epsilon`` is *relative and per token*: every word vector moves by at most ``epsilon`` times its own
    length, so the budget means the same whatever scale the embeddings grow to. Steps
    have size ``2.5 * radius / steps`` (``steps=1`` is FGM: one step of the full radius). Returned detached:
    the adversary is not trained.

    ``objective="loss"`` ascends the cross-entropy (training); ``"margin"`` ascends the best wrong logit minus
    the true one, whose gradient does not vanish on examples the model is very sure of — a cross-entropy
    attack on a saturated softmax gets a zero gradient and reports false robustness (Carlini & Wagner, 2017).
    ``straight_through=True`` also passes the gradient through saturated tanh layers (see
    :func:`_gradient_through_tanh`); the attack uses both, the training adversary neither.
    """
    if objective not in ("loss", "margin"):
        raise ValueError(f"objective must be 'loss' or 'margin'; got {objective!r}")
    epsilon = check_epsilon(epsilon)
    steps = check_positive_int("steps", steps)
    base = embeddings.detach()
    radius = epsilon * base.norm(dim=-1, keepdim=True)
    step_size = radius if steps == 1 else 2.5 * radius / steps
    delta = torch.zeros_like(base)
    for _ in range(steps):
        delta.requires_grad_(True)
        with torch.enable_grad(), _gradient_through_tanh(model) if straight_through else nullcontext():
            out = model(inputs_embeds=base + delta, attention_mask=attention_mask, labels=labels)
            (grad,) = torch.autograd.grad(out.loss if objective == "loss" else _margin(out.logits, labels), delta)
        delta = _project(delta.detach() + step_size * _per_token_normalize(grad.detach()), radius)
    return delta.detach()


def _margin(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    true = logits.gather(1, labels[:, None])[:, 0]
    wrong = logits.scatter(1, labels[:, None], float("-inf")).max(1).values
    return (wrong - true).sum()


class AdversarialLoss(nn.Module):
    """Wraps a classifier so that the training loop's loss is the mean of the clean loss and the loss on
    adversarially perturbed embeddings. ``method``: ``"FGM"`` (one step) or ``"PGD"`` (``pgd_steps`` steps)."""

    def __init__(self, model: nn.Module, method: str, epsilon: float, pgd_steps: int = 3):
        super().__init__()
        if method not in METHODS[1:]:
            raise ValueError(f"method must be one of {METHODS[1:]}; got {method!r}")
        self.model, self.method = model, method
        self.epsilon = check_epsilon(epsilon)
        self.steps = 1 if method == "FGM" else check_positive_int("pgd_steps", pgd_steps)

    def forward(self, input_ids, labels, attention_mask=None, **_):
        embeddings = _embed(self.model, input_ids)
        clean = self.model(inputs_embeds=embeddings, attention_mask=attention_mask, labels=labels)
        delta = perturbation(
            self.model, embeddings, labels, epsilon=self.epsilon, steps=self.steps, attention_mask=attention_mask
        )
        adversarial = self.model(inputs_embeds=embeddings + delta, attention_mask=attention_mask, labels=labels)
        return SimpleNamespace(loss=(clean.loss + adversarial.loss) / 2, logits=clean.logits)


def attacked_accuracy(
    model, data: dict[str, torch.Tensor], *, epsilon: float, steps: int = 10, batch_size: int = 512
) -> float:
    """Accuracy when every example's embeddings are perturbed by a ``steps``-step PGD attack of radius
    ``epsilon`` (``epsilon=0``: clean accuracy)."""
    model.eval()
    device = model_device(model)
    correct = 0
    n = len(data["labels"])
    for start in range(0, n, batch_size):
        ids = data["input_ids"][start : start + batch_size].to(device)
        mask = data["attention_mask"][start : start + batch_size].to(device)
        labels = data["labels"][start : start + batch_size].to(device)
        with torch.no_grad():
            embeddings = _embed(model, ids)
        if epsilon > 0:
            delta = perturbation(
                model,
                embeddings,
                labels,
                epsilon=epsilon,
                steps=steps,
                attention_mask=mask,
                objective="margin",
                straight_through=True,
            )
        else:
            delta = torch.zeros_like(embeddings)
        with torch.no_grad():
            pred = model(inputs_embeds=embeddings + delta, attention_mask=mask).logits.argmax(-1)
        correct += int((pred == labels).sum())
    return correct / n


def train_classifier(
    tokenizer,
    train_data: dict[str, torch.Tensor],
    method: str = "plain",
    *,
    epsilon: float = 1.0,
    steps: int = 300,
    seed: int = 0,
    device="cpu",
    batch_size: int = 64,
    lr: float = 3e-3,
    start_from=None,
):
    """Train the tiny BERT classifier of chapter 2.3 on ``train_data`` with ``method`` (see :data:`METHODS`);
    return it in eval mode on the CPU. ``start_from`` (a trained classifier, left unchanged) makes this
    adversarial *fine-tuning*: from scratch, the adversary keeps a tiny model on its initial plateau."""
    from . import models
    from .batching import TensorBatches
    from .shortcuts import model_inputs
    from .train import TrainConfig, train

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    torch.manual_seed(seed)
    model = models.tiny_bert_classifier(tokenizer, 2, n_layer=2, hidden=64, n_head=4)
    if start_from is not None:
        model.load_state_dict(start_from.state_dict())
    wrapped = model if method == "plain" else AdversarialLoss(model, method, epsilon)
    tensors = model_inputs(train_data) | {"labels": train_data["labels"]}
    batches = TensorBatches(tensors, batch_size=batch_size, seed=seed)
    train(wrapped, batches, TrainConfig(steps=steps, lr=lr, seed=seed), device=device, progress=False)
    return model.to("cpu").eval()


@dataclass
class RobustnessRun:
    accuracy: pd.DataFrame  # method, epsilon (attack radius; 0 = clean), accuracy
    cost: pd.DataFrame  # method, train_seconds, time_ratio (to plain fine-tuning)
    models: dict  # method -> classifier
    test_data: dict
    tokenizer: object


def robustness_experiment(
    *,
    epsilon: float = 0.4,
    attack_epsilons=(0.0, 0.1, 0.2, 0.3, 0.4, 0.5),
    steps: int = 300,
    n_train: int = 4000,
    seed: int = 0,
    device="cpu",
) -> RobustnessRun:
    """Train a classifier on reviews for ``steps`` steps, then fine-tune three copies for ``steps`` more:
    plainly, with FGM and with PGD at radius ``epsilon``. Returns the accuracy of each method under a PGD
    attack at every radius in ``attack_epsilons`` (0 = clean), each method's training seconds with its ratio
    to plain fine-tuning (measured in this run), the models and the test data."""
    import time

    from .shortcuts import encode_sentences
    from .tokenizer import build_tokenizer

    tok = build_tokenizer(review_vocabulary())
    train_data = encode_sentences(review_sentences(n_train, seed=seed), tok)
    test_data = encode_sentences(review_sentences(1000, seed=seed + 1), tok)
    start = train_classifier(tok, train_data, "plain", steps=steps, seed=seed, device=device)
    rows, cost, trained = [], [], {}
    for method in METHODS:
        t0 = time.perf_counter()
        model = train_classifier(
            tok, train_data, method, epsilon=epsilon, steps=steps, seed=seed, device=device, start_from=start
        )
        cost.append({"method": method, "train_seconds": time.perf_counter() - t0})
        trained[method] = model
        for eps in attack_epsilons:
            rows.append(
                {"method": method, "epsilon": eps, "accuracy": attacked_accuracy(model, test_data, epsilon=eps)}
            )
    cost = pd.DataFrame(cost)
    cost["time_ratio"] = cost.train_seconds / cost.set_index("method").loc["plain", "train_seconds"]
    return RobustnessRun(pd.DataFrame(rows), cost, trained, test_data, tok)


def shortcut_experiment(*, epsilon: float = 0.4, steps: int = 300, seed: int = 0, device="cpu") -> pd.DataFrame:
    """Reviews whose marker word agrees with the (25%-noisy) label 95% of the time in training: plain and PGD
    fine-tuning from the same start, tested where the marker agrees 95% and 5% of the time."""
    from .shortcuts import encode_sentences
    from .tokenizer import build_tokenizer

    tok = build_tokenizer(review_vocabulary())
    train_data = encode_sentences(review_sentences(4000, marker_agreement=0.95, label_noise=0.25, seed=seed), tok)
    tests = {
        agreement: encode_sentences(review_sentences(1000, marker_agreement=agreement, seed=seed + 1), tok)
        for agreement in (0.95, 0.05)
    }
    start = train_classifier(tok, train_data, "plain", steps=steps, seed=seed, device=device)
    rows = []
    for method in ("plain", "PGD"):
        model = train_classifier(
            tok, train_data, method, epsilon=epsilon, steps=steps, seed=seed, device=device, start_from=start
        )
        for agreement, data in tests.items():
            rows.append(
                {"method": method, "marker_agreement": agreement, "accuracy": attacked_accuracy(model, data, epsilon=0)}
            )
    return pd.DataFrame(rows)

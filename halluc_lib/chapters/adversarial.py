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

import pandas as pd
import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from ..core import recipes
from ..core.classify import confidence_and_correct
from ..core.ledger import Tradeoff
from ..core.metrics import expected_calibration_error
from ..core.recipes import Trained
from ..core.runtime import Device, check_positive_int, check_scale, model_device
from ..core.tokenizer import build_tokenizer
from ..datasets.sentences import encode_sentences, review_sentences, review_vocabulary

#: The ways to fine-tune: plainly, or against an FGM or a PGD adversary.
METHODS = ("plain", "FGM", "PGD")


def _embed(model: torch.nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
    return model.get_input_embeddings()(input_ids)


class _StraightThroughTanh(nn.Module):
    """tanh forward, identity backward: the BPDA trick of Athalye et al. (2018) for a saturating layer."""

    def forward(self, x):
        return x + (torch.tanh(x) - x).detach()


@contextmanager
def _gradient_through_tanh(model: nn.Module):
    """Swap every ``nn.Tanh`` (BERT's pooler) for ``_StraightThroughTanh`` while the adversary runs.

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
    """``epsilon`` as a float if it is a number >= 0 (a radius relative to each word vector's length)."""
    if not (isinstance(epsilon, (int, float)) and epsilon >= 0):
        raise ValueError(f"epsilon must be a number >= 0; got {epsilon!r}")
    return float(epsilon)


def perturbation(
    model: torch.nn.Module,
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
    ``_gradient_through_tanh``); the attack uses both, the training adversary neither.
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
    model: torch.nn.Module, data: dict[str, torch.Tensor], *, epsilon: float, steps: int = 10, batch_size: int = 512
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


@dataclass
class RobustnessRun:
    """Accuracy of each method under attack at every radius, what each cost, and the models."""

    accuracy: pd.DataFrame  # method, epsilon (attack radius; 0 = clean), accuracy
    cost: pd.DataFrame  # method, train_seconds, time_ratio (to plain fine-tuning)
    models: dict  # method -> classifier
    test_data: dict
    tokenizer: object


def compare_robustness(
    *,
    epsilon: float = 0.4,
    attack_epsilons=(0.0, 0.1, 0.2, 0.3, 0.4, 0.5),
    steps: int = 300,
    n_train: int = 4000,
    seed: int = 0,
    device: Device = "auto",
) -> RobustnessRun:
    """Train a classifier on reviews for ``steps`` steps, then fine-tune three copies for ``steps`` more:
    plainly, with FGM and with PGD at radius ``epsilon``. Returns the accuracy of each method under a PGD
    attack at every radius in ``attack_epsilons`` (0 = clean), each method's training seconds with its ratio
    to plain fine-tuning (measured in this run), the models and the test data."""

    tok = build_tokenizer(review_vocabulary())
    train_data = encode_sentences(review_sentences(n_train, seed=seed), tok)
    test_data = encode_sentences(review_sentences(1000, seed=seed + 1), tok)
    start = train_classifier(tok, train_data, "plain", steps=steps, seed=seed, device=device).model
    rows, cost, trained = [], [], {}
    for method in METHODS:
        fitted = train_classifier(
            tok, train_data, method, epsilon=epsilon, steps=steps, seed=seed, device=device, start_from=start
        )
        model = trained[method] = fitted.model
        cost.append({"method": method, "train_seconds": fitted.result.seconds})
        for eps in attack_epsilons:
            rows.append(
                {"method": method, "epsilon": eps, "accuracy": attacked_accuracy(model, test_data, epsilon=eps)}
            )
    cost = pd.DataFrame(cost)
    cost["time_ratio"] = cost.train_seconds / cost.set_index("method").loc["plain", "train_seconds"]
    return RobustnessRun(pd.DataFrame(rows), cost, trained, test_data, tok)


def marker_reviews(tokenizer: PreTrainedTokenizerBase, agreement: float, seed: int = 0) -> dict[str, torch.Tensor]:
    """1,000 encoded test reviews with clean labels, whose marker word agrees with the label with probability
    ``agreement``: 0.95 where the shortcut tells the truth, 0.05 where it lies."""
    return encode_sentences(review_sentences(1000, marker_agreement=agreement, seed=seed + 1), tokenizer)


def shortcut_under_pgd(
    *, epsilon: float = 0.4, steps: int = 300, seed: int = 0, device: Device = "auto"
) -> pd.DataFrame:
    """Reviews whose marker word agrees with the (25%-noisy) label 95% of the time in training: plain and PGD
    fine-tuning from the same start, tested where the marker agrees 95% and 5% of the time."""

    tok = build_tokenizer(review_vocabulary())
    train_data = encode_sentences(review_sentences(4000, marker_agreement=0.95, label_noise=0.25, seed=seed), tok)
    tests = {agreement: marker_reviews(tok, agreement, seed) for agreement in (0.95, 0.05)}
    start = train_classifier(tok, train_data, "plain", steps=steps, seed=seed, device=device).model
    rows = []
    for method in ("plain", "PGD"):
        model = train_classifier(
            tok, train_data, method, epsilon=epsilon, steps=steps, seed=seed, device=device, start_from=start
        ).model
        for agreement, data in tests.items():
            rows.append(
                {"method": method, "marker_agreement": agreement, "accuracy": attacked_accuracy(model, data, epsilon=0)}
            )
    return pd.DataFrame(rows)


def train_classifier(
    tokenizer: PreTrainedTokenizerBase,
    train_data: dict[str, torch.Tensor],
    method: str = "plain",
    *,
    epsilon: float = 1.0,
    steps: int = 300,
    seed: int = 0,
    device: Device = "cpu",
    batch_size: int = 64,
    lr: float = 3e-3,
    start_from=None,
) -> Trained:
    """Train the tiny BERT classifier of chapter 2.3 on ``train_data`` with ``method`` (see :data:`METHODS`);
    return it (in eval mode on the CPU) with its training result. ``start_from`` (a trained classifier, left
    unchanged) makes this adversarial *fine-tuning*: from scratch, the adversary keeps a tiny model on its
    initial plateau."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")

    def wrap(model: torch.nn.Module):
        return model if method == "plain" else AdversarialLoss(model, method, epsilon)

    return recipes.train_text_classifier(
        tokenizer,
        train_data,
        steps,
        seed=seed,
        device=device,
        batch_size=batch_size,
        lr=lr,
        start_from=start_from,
        wrap=wrap,
    )


@dataclass(frozen=True)
class Config:
    """The training radius, the attack radii, and how long the start and each fine-tuning run train: ``steps``
    in the robustness experiment, ``shortcut_steps`` in the marker-word one."""

    epsilon: float = 0.4  # each word vector may move by 40% of its length
    attack_epsilons: tuple[float, ...] = (0.0, 0.2, 0.4, 0.5)
    # at 300 the robustness claims held with the same margins, a third slower (sweep, seeds 0-4); at 150, seed 1's
    # plain model was already 96% accurate under attack, so the PGD claim showed nothing (its null passed)
    steps: int = 200
    # at 200 the marker shortcut was learned in four seeds of five (seed 1: 49% accuracy where the marker lies)
    shortcut_steps: int = 300
    n_train: int = 4000

    def __post_init__(self):
        check_epsilon(self.epsilon)
        if not self.attack_epsilons:
            raise ValueError("attack_epsilons must name at least one radius (0 = clean)")
        for eps in self.attack_epsilons:
            if eps != 0:
                check_epsilon(eps)
        check_positive_int("steps", self.steps)
        check_positive_int("shortcut_steps", self.shortcut_steps)
        check_positive_int("n_train", self.n_train)

    @classmethod
    def for_scale(cls, scale: str = "quick") -> Config:
        """Quick: 200 steps for the start and each fine-tuning (300 in the marker-word experiment); full: 1,200."""
        return cls() if check_scale(scale) == "quick" else cls(steps=1200, shortcut_steps=1200)


@dataclass
class Run:
    """Robustness of each method (``robustness``), the marker-word shortcut under PGD (``shortcut``), and the
    shortcut claim's null: the PGD model of the robustness experiment, whose training reviews carry no marker,
    tested where the marker lies (``marker_lies_without_shortcut``) — a model that never learned the marker
    reads the review, so the failure of the shortcut model comes from its data, not from the method."""

    config: Config
    robustness: RobustnessRun
    shortcut: pd.DataFrame  # method, marker_agreement, accuracy
    marker_lies_without_shortcut: float


def run(config: Config, *, seed: int = 0, device: Device = "auto", progress: bool = True) -> Run:
    """Fine-tune plainly, with FGM and with PGD, attack each model, and test the shortcut under PGD (and, as its
    null, the PGD model trained without the marker).

    ``progress`` is accepted for the common interface; these classifiers train in seconds, without a bar.
    """
    if not isinstance(config, Config):
        raise TypeError(f"config must be an adversarial.Config; got {type(config).__name__}")
    # One after another, not side by side (halluc_lib.core.parallel): with the two experiments side by side on one
    # thread each, the PGD model kept 0.944 of the reviews under attack at seed 0 (claim: >= 0.95) and at seed 4 the
    # marker-word start had not learned the marker in its 300 steps (0.501 right where it lies; claim: <= 0.5). The
    # attacks on the three models side by side saved nothing measurable in the page (58.7 and 60.6 s against 57.1 and
    # 59.1 s for the whole run, alternating)
    robustness = compare_robustness(
        epsilon=config.epsilon,
        attack_epsilons=config.attack_epsilons,
        steps=config.steps,
        n_train=config.n_train,
        seed=seed,
        device=device,
    )
    shortcut = shortcut_under_pgd(epsilon=config.epsilon, steps=config.shortcut_steps, seed=seed, device=device)
    lies = marker_reviews(robustness.tokenizer, 0.05, seed)
    without_shortcut = attacked_accuracy(robustness.models["PGD"], lies, epsilon=0)
    return Run(config, robustness, shortcut, without_shortcut)


def tradeoffs(run: Run) -> list[Tradeoff]:
    """The page's entry in the trade-off ledger: PGD fine-tuning against plain fine-tuning."""
    acc = run.robustness.accuracy.pivot(index="epsilon", columns="method", values="accuracy")
    clean, attacked = acc.loc[0.0], acc.loc[run.config.epsilon]
    ratio = run.robustness.cost.set_index("method").time_ratio
    ece = {
        m: expected_calibration_error(*confidence_and_correct(run.robustness.models[m], run.robustness.test_data))
        for m in ("plain", "PGD")
    }
    return [
        Tradeoff(
            mitigation="adversarial training (PGD)",
            page="ch04_2_adversarial",
            task=f"review sentiment, PGD attack at ε = {run.config.epsilon}",
            error_name="error under attack",
            error=(1 - attacked["plain"], 1 - attacked["PGD"]),
            accuracy=(clean["plain"], clean["PGD"]),
            ece=(ece["plain"], ece["PGD"]),
            compute_ratio=ratio["PGD"],
            compute_unit="fine-tuning wall time",
            needs="a threat model (the radius ε); no extra data",
        )
    ]

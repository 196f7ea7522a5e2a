"""Popularity bias in recommender systems: what logged data teach a model (chapter 5.3).

A recommender learns from interaction logs, and a log records only what users were *shown*. Items that are
already popular are shown more, so they collect more clicks whatever users actually prefer: the data are
*missing not at random*. A model fitted to the log learns exposure × preference and recommends popular
items back — the recommender's version of a model learning the data's statistics instead of the task.

This module simulates such a log with known ground truth, so the bias can be measured rather than argued:

* every user-item pair has a true relevance probability (from latent tastes unrelated to popularity);
* every item has an exposure propensity that falls with its popularity rank (a long tail);
* the log holds a click where an item was shown *and* relevant; the unbiased test set holds, for each user,
  a uniformly random set of items with their true relevance — the protocol of Yahoo! R3 and Coat, where users
  rated randomly chosen items (Marlin & Zemel 2009; Schnabel et al. 2016).

Matrix factorisation is trained on the log with the pointwise loss, plainly or with inverse-propensity
weights (Saito et al. 2020's unbiased estimator, propensities estimated from item popularity as they did).

:func:`transfer_run` reuses item vectors pretrained on one half of the users' log for the other half (new
users), as pretrained representations are reused (the source's §3.4), and measures the popularity bias that
travels with them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..core.batching import TensorBatches
from ..core.files import content_sha256, save_with_card
from ..core.recipes import CLASSIFIER_PRECISION, Budget
from ..core.runtime import Device, check_positive_int, check_probability, check_scale
from ..core.train import TrainConfig, train

WEIGHTINGS = ("plain", "ipw")


@dataclass(frozen=True)
class Config:
    """Sizes of the simulated catalogue, how skewed exposure is, and the test protocol."""

    n_users: int = 600
    n_items: int = 400
    dim: int = 8
    popularity_exponent: float = 1.0  # exposure propensity ∝ popularity rank^(−exponent) ...
    shown_per_user: int = 100  # ... scaled so that a user is shown this many items on average
    mean_relevance: float = 0.15
    test_items_per_user: int = 20
    k: int = 10  # length of the recommendation lists whose popularity is measured
    mf_dim: int = 16  # the factorisation's latent dimension (the simulation's is `dim`)
    epochs: int = 8
    batch_size: int = 2048

    def __post_init__(self):
        for name in (
            "n_users",
            "n_items",
            "dim",
            "test_items_per_user",
            "shown_per_user",
            "k",
            "mf_dim",
            "epochs",
            "batch_size",
        ):
            check_positive_int(name, getattr(self, name))
        if not self.popularity_exponent >= 0:
            raise ValueError(f"popularity_exponent must be >= 0; got {self.popularity_exponent!r}")
        if self.shown_per_user > self.n_items:
            raise ValueError(f"shown_per_user must be at most n_items ({self.n_items}); got {self.shown_per_user}")
        check_probability("mean_relevance", self.mean_relevance, open_low=True, open_high=True)
        if self.test_items_per_user > self.n_items // 2:
            raise ValueError(f"test_items_per_user must be at most n_items // 2 ({self.n_items // 2})")

    @classmethod
    def for_scale(cls, scale: str = "quick") -> Config:
        """Quick: 600 users, 400 items; full: 5,000 users, 2,000 items, 16 latent dimensions."""
        check_scale(scale)
        return cls() if scale == "quick" else cls(n_users=5000, n_items=2000, dim=16)


@dataclass
class RecsysData:
    """A simulated world and its observations. ``relevance`` and ``propensity`` are the ground truth a real
    system never sees; ``log`` (clicked pairs) and ``test`` (random pairs with true labels) are the data."""

    config: Config
    seed: int
    relevance: np.ndarray  # (users, items): probability that the user likes the item
    propensity: np.ndarray  # (items,): probability that the item is shown to a user
    log: pd.DataFrame  # user, item: the clicks
    test: pd.DataFrame  # user, item, label: uniformly random items per user, labelled by true relevance

    @property
    def clicks_per_item(self) -> np.ndarray:
        return np.bincount(self.log.item.to_numpy(), minlength=self.config.n_items)


def exposure_propensity(rank, exponent: float, shown_per_user: int) -> np.ndarray:
    """Probability that each item is shown to a user: ∝ rank^(−exponent), scaled so that ``shown_per_user``
    items are shown on average and capped at 1 (the most popular items are shown to everybody)."""
    weights = np.asarray(rank, dtype=float) ** (-exponent)
    capped = np.zeros(weights.size, dtype=bool)
    while True:  # items whose share would exceed 1 are shown always; the rest share what is left
        theta = np.where(capped, 1.0, (shown_per_user - capped.sum()) * weights / weights[~capped].sum())
        over = (theta > 1) & ~capped
        if not over.any():
            return theta
        capped |= over


def simulate_logs(config: Config, seed: int = 0) -> RecsysData:
    """Draw tastes, exposure and clicks; then the unbiased test set. Deterministic for a seed."""
    if not isinstance(config, Config):
        raise TypeError(f"config must be a recommender.Config; got {type(config).__name__}")
    rng = np.random.default_rng([seed, 53])
    users = rng.normal(size=(config.n_users, config.dim)) / config.dim**0.25
    items = rng.normal(size=(config.n_items, config.dim)) / config.dim**0.25
    affinity = users @ items.T
    offset = np.quantile(affinity, 1 - config.mean_relevance)  # about mean_relevance of pairs are likely likes
    relevance = 1 / (1 + np.exp(-3 * (affinity - offset)))
    rank = rng.permutation(config.n_items) + 1  # popularity rank, unrelated to taste
    propensity = exposure_propensity(rank, config.popularity_exponent, config.shown_per_user)
    shown = rng.random(relevance.shape) < propensity[None, :]
    liked = rng.random(relevance.shape) < relevance
    clicked = shown & liked
    u, i = np.nonzero(clicked)
    log = pd.DataFrame({"user": u, "item": i})
    rows = []
    for user in range(config.n_users):
        candidates = np.flatnonzero(~clicked[user])
        chosen = rng.choice(candidates, size=config.test_items_per_user, replace=False)
        labels = rng.random(chosen.size) < relevance[user, chosen]
        rows.append(pd.DataFrame({"user": user, "item": chosen, "label": labels.astype(int)}))
    return RecsysData(config, seed, relevance, propensity, log, pd.concat(rows, ignore_index=True))


# --- freezing the data (data/ files with a data card) -------------------------------------------------------


def _payload(data: RecsysData) -> dict:
    return {
        "log": {"user": data.log.user.tolist(), "item": data.log.item.tolist()},
        "test": {c: data.test[c].tolist() for c in ("user", "item", "label")},
    }


def data_card(data: RecsysData) -> dict:
    """The data card of simulated logs: what and how, the configuration, sizes, skew and checksum."""
    counts = data.clicks_per_item
    return {
        "what": "Simulated interaction logs with popularity-driven exposure (missing not at random), and an "
        "unbiased test set of uniformly random items per user labelled by true relevance.",
        "how": "halluc_lib.chapters.recommender.simulate_logs: latent tastes (normal factors) give each user-item "
        "pair a relevance probability; exposure propensity falls with a random popularity rank as rank^-exponent, "
        "scaled to shown_per_user items per user; a click is shown and liked. Test: test_items_per_user random "
        "unclicked items per user, labelled by a draw from their relevance.",
        "config": asdict(data.config),
        "seed": data.seed,
        "clicks": len(data.log),
        "test_pairs": len(data.test),
        "clicks_on_top_10pc_items": round(float(np.sort(counts)[::-1][: len(counts) // 10].sum() / counts.sum()), 3),
        "licence": "CC0 (synthetic)",
        "sha256": content_sha256(_payload(data)),
    }


def save_data(data: RecsysData, path) -> Path:
    """Write the log and the test set as JSON with their data card, and the card as Markdown beside it."""
    return save_with_card(path, _payload(data), data_card(data))


def logs_from_payload(payload: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The log and the test set of a file written by :func:`save_data` (read it with
    :func:`~halluc_lib.core.files.load_shipped`)."""
    return pd.DataFrame(payload["log"]), pd.DataFrame(payload["test"])


# --- the model and its training -------------------------------------------------------------------------------


class MatrixFactorization(nn.Module):
    """Score = user vector · item vector + item bias; ``forward`` returns ``.loss`` (weighted pointwise
    log-loss) and ``.logits`` like a transformers model, so the book's one training loop trains it."""

    def __init__(self, n_users: int, n_items: int, dim: int = 16):
        super().__init__()
        self.users = nn.Embedding(check_positive_int("n_users", n_users), check_positive_int("dim", dim))
        self.items = nn.Embedding(check_positive_int("n_items", n_items), dim)
        self.item_bias = nn.Embedding(n_items, 1)
        for emb in (self.users, self.items):
            nn.init.normal_(emb.weight, std=0.1)
        nn.init.zeros_(self.item_bias.weight)

    def forward(self, users, items, targets=None, weights=None, **_) -> SimpleNamespace:
        logits = (self.users(users) * self.items(items)).sum(-1) + self.item_bias(items).squeeze(-1)
        loss = None
        if targets is not None:
            loss = weighted_log_loss(logits, targets, weights)
        return SimpleNamespace(loss=loss, logits=logits)

    @torch.inference_mode()
    def scores(self) -> np.ndarray:
        """Every user's score for every item, (users, items)."""
        return (self.users.weight @ self.items.weight.T + self.item_bias.weight.T).float().cpu().numpy()


def weighted_log_loss(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor | None = None):
    """Pointwise log-loss −[y·log σ(s) + (1 − y)·log σ(−s)] with y = t (plain) or y = t·w, w = 1/θ: a click on
    an item shown with probability θ counts 1/θ times as a like and 1 − 1/θ times as a dislike, which is
    unbiased for the true relevance in expectation over exposure (Saito et al. 2020)."""
    positive = targets if weights is None else targets * weights
    log_p, log_not_p = nn.functional.logsigmoid(logits), nn.functional.logsigmoid(-logits)
    return -(positive * log_p + (1 - positive) * log_not_p).mean()


def popularity_propensity(log: pd.DataFrame, n_items: int, power: float = 0.5, clip: float = 0.05) -> np.ndarray:
    """Exposure propensities estimated from the log alone: (clicks of the item / clicks of the top item)^power,
    clipped below at ``clip`` so that rare items do not get unbounded weights (Saito et al. 2020)."""
    check_probability("clip", clip, open_low=True)
    counts = np.bincount(log.item.to_numpy(), minlength=check_positive_int("n_items", n_items)).astype(float)
    return np.clip((counts / max(counts.max(), 1.0)) ** power, clip, 1.0)


def training_pairs(log: pd.DataFrame, n_users: int, n_items: int, propensity=None) -> dict[str, torch.Tensor]:
    """Every (user, item) pair with target 1 if clicked, else 0 — implicit feedback; with ``propensity``, the
    weight 1/θ of the pair's item."""
    users, items = np.meshgrid(np.arange(n_users), np.arange(n_items), indexing="ij")
    clicked = np.zeros((n_users, n_items), dtype=np.float32)
    clicked[log.user.to_numpy(), log.item.to_numpy()] = 1
    pairs = {
        "users": torch.from_numpy(users.ravel()),
        "items": torch.from_numpy(items.ravel()),
        "targets": torch.from_numpy(clicked.ravel()),
    }
    if propensity is not None:
        pairs["weights"] = torch.from_numpy((1 / np.asarray(propensity, dtype=np.float32))[items.ravel()])
    return pairs


def train_mf(
    log: pd.DataFrame,
    n_users: int,
    n_items: int,
    weighting: str = "plain",
    *,
    dim: int = 16,
    epochs: int = 8,
    batch_size: int = 2048,
    lr: float = 1e-2,
    weight_decay: float = 1e-4,
    seed: int = 0,
    device: Device = "auto",
    propensity: np.ndarray | None = None,
    items_from: MatrixFactorization | None = None,
) -> tuple[MatrixFactorization, float]:
    """Fit matrix factorisation to the log with the book's training loop; returns the model and its training
    seconds. ``weighting="ipw"`` weights each pair by 1/θ of its item, with θ estimated from the log
    (:func:`popularity_propensity`) unless ``propensity`` gives it.

    ``items_from``: a model pretrained on other users' log whose item vectors and biases are copied and frozen,
    so that only the new users' vectors are fitted — how pretrained item embeddings are reused for new users."""

    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}; got {weighting!r}")
    if weighting == "plain":
        propensity = None
    elif propensity is None:
        propensity = popularity_propensity(log, n_items)
    batches = TensorBatches(training_pairs(log, n_users, n_items, propensity), batch_size=batch_size, seed=seed)
    torch.manual_seed(seed)
    model = MatrixFactorization(n_users, n_items, dim)
    if items_from is not None:
        for mine, theirs in ((model.items, items_from.items), (model.item_bias, items_from.item_bias)):
            if mine.weight.shape != theirs.weight.shape:
                raise ValueError(
                    f"items_from must have {n_items} items of dimension {dim}; got {tuple(theirs.weight.shape)}"
                )
            mine.weight.data.copy_(theirs.weight.data)
            mine.weight.requires_grad_(False)  # the loop's optimizer takes only what requires a gradient
    config = TrainConfig(
        steps=Budget(epochs=check_positive_int("epochs", epochs)).steps_for(batches.batches_per_epoch()),
        lr=lr,
        weight_decay=weight_decay,
        warmup_fraction=0.0,
        seed=seed,
        precision=CLASSIFIER_PRECISION,  # a model this small gains nothing from a CPU's bf16
    )
    result = train(model, batches, config, device=device, progress=False)
    return model.cpu(), result.seconds


# --- metrics ---------------------------------------------------------------------------------------------------


def ndcg_recall_at_k(scores: np.ndarray, test: pd.DataFrame, k: int = 5) -> dict:
    """Rank each user's test items by score: mean NDCG@k and recall@k over users with a relevant test item."""
    k = check_positive_int("k", k)
    ndcgs, recalls = [], []
    discounts = 1 / np.log2(np.arange(2, k + 2))
    for user, group in test.groupby("user"):
        labels = group.label.to_numpy()
        if labels.sum() == 0:
            continue
        order = np.argsort(-scores[user, group.item.to_numpy()], kind="stable")[:k]
        gains = labels[order]
        ideal = np.sort(labels)[::-1][:k]
        ndcgs.append((gains * discounts[: len(gains)]).sum() / (ideal * discounts[: len(ideal)]).sum())
        recalls.append(gains.sum() / labels.sum())
    return {f"NDCG@{k}": float(np.mean(ndcgs)), f"recall@{k}": float(np.mean(recalls))}


def top_k(scores: np.ndarray, k: int, exclude: pd.DataFrame | None = None) -> np.ndarray:
    """Each user's ``k`` highest-scoring items, leaving out the pairs in ``exclude`` (items already clicked)."""
    k = check_positive_int("k", k)
    scores = np.array(scores, dtype=float, copy=True)
    if exclude is not None and len(exclude):
        scores[exclude.user.to_numpy(), exclude.item.to_numpy()] = -np.inf
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def gini(counts) -> float:
    """Gini coefficient of how often each item is recommended: 0 = all equally, → 1 = a few items only."""
    x = np.sort(np.asarray(counts, dtype=float))
    if x.size == 0 or x.sum() == 0:
        raise ValueError("counts must hold at least one positive count")
    n = x.size
    return float((2 * np.arange(1, n + 1) - n - 1) @ x / (n * x.sum()))


def popularity_metrics(recommended: np.ndarray, popularity: np.ndarray, head_share: float = 0.2) -> dict:
    """Beyond-accuracy metrics of top-k lists: ARP (mean popularity of recommended items), APLT (share of
    recommended items from the long tail — outside the ``head_share`` most popular items) and the Gini of
    recommendation counts (Abdollahpouri et al. 2017, 2019)."""
    check_probability("head_share", head_share, open_low=True, open_high=True)
    popularity = np.asarray(popularity, dtype=float)
    n_head = max(1, round(head_share * popularity.size))
    head = np.zeros(popularity.size, dtype=bool)
    head[np.argsort(-popularity, kind="stable")[:n_head]] = True
    counts = np.bincount(recommended.ravel(), minlength=popularity.size)
    return {
        "ARP": float(popularity[recommended].mean()),
        "APLT": float((~head[recommended]).mean()),
        "Gini": gini(counts),
    }


# --- the experiment --------------------------------------------------------------------------------------------


@dataclass
class Run:
    """The simulated world, and per model its unbiased-test accuracy and the popularity of its top-k lists."""

    config: Config
    data: RecsysData
    table: pd.DataFrame  # one row per model: unbiased-test accuracy and popularity of its top-k lists
    scores: dict  # model name -> (users, items) scores


def run(config: Config, *, seed: int = 0, device: Device = "auto", progress: bool = False) -> Run:
    """Simulate the log, fit plain and IPW matrix factorisation, and compare them with two references: the
    truth (ranking by true relevance, what users would pick) and most-popular (ranking by clicks), on each
    user's top ``config.k``. ``progress`` is accepted for the common interface: these models train in seconds."""
    if not isinstance(config, Config):
        raise TypeError(f"config must be a recommender.Config; got {type(config).__name__}")
    k = config.k
    data = simulate_logs(config, seed)
    popularity = data.clicks_per_item.astype(float)
    scores = {
        "truth": data.relevance,
        "most popular": np.broadcast_to(popularity, data.relevance.shape),
    }
    seconds = {}
    for weighting in WEIGHTINGS:
        model, seconds[weighting] = train_mf(
            data.log,
            config.n_users,
            config.n_items,
            weighting,
            dim=config.mf_dim,
            epochs=config.epochs,
            batch_size=config.batch_size,
            seed=seed,
            device=device,
        )
        scores[f"MF {weighting}"] = model.scores()
    rows = []
    for name, s in scores.items():
        recommended = top_k(s, k, exclude=data.log)
        rows.append(
            {
                "model": name,
                **ndcg_recall_at_k(s, data.test, k=5),
                **popularity_metrics(recommended, popularity),
                "train_seconds": seconds.get(name.removeprefix("MF "), np.nan),
            }
        )
    return Run(config, data, pd.DataFrame(rows).set_index("model"), scores)


# --- pretrained item embeddings for new users (source §3.4) --------------------------------------------------


@dataclass
class TransferRun:
    """New users served with item vectors pretrained on other users' log: per way of getting the item vectors,
    the new users' unbiased-test accuracy and the popularity of their top-k lists."""

    config: Config
    table: pd.DataFrame  # one row per way of getting the item vectors, and the truth


def split_users(data: RecsysData, share_old: float = 0.5) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The first ``share_old`` of the users are the pretraining group: ``(their log, the new users' log, the
    new users' unbiased test)``, the new users renumbered from 0 in both."""
    check_probability("share_old", share_old, open_low=True, open_high=True)
    cut = round(share_old * data.config.n_users)
    old = data.log[data.log.user < cut]
    new_log = data.log[data.log.user >= cut].assign(user=lambda f: f.user - cut)
    new_test = data.test[data.test.user >= cut].assign(user=lambda f: f.user - cut)
    return old.reset_index(drop=True), new_log.reset_index(drop=True), new_test.reset_index(drop=True)


def transfer_run(config: Config, *, seed: int = 0, device: Device = "auto") -> TransferRun:
    """Pretrain matrix factorisation on half the users' log, plainly and with IPW; give the other half (new
    users) the pretrained item vectors, frozen, and fit only their own vectors on their log — plainly, and for
    the IPW-pretrained items also with IPW (debiased end to end). The new users' recommendations are compared
    with the truth and with a model trained from scratch on their log."""
    if not isinstance(config, Config):
        raise TypeError(f"config must be a recommender.Config; got {type(config).__name__}")
    data = simulate_logs(config, seed)
    old_log, new_log, new_test = split_users(data, share_old=0.5)
    n_old = round(0.5 * config.n_users)  # as split_users cuts
    n_new = config.n_users - n_old
    options = dict(dim=config.mf_dim, epochs=config.epochs, batch_size=config.batch_size, seed=seed, device=device)
    scores = {"truth": data.relevance[n_old:]}
    for weighting in WEIGHTINGS:
        pretrained, _ = train_mf(old_log, n_old, config.n_items, weighting, **options)
        users, _ = train_mf(new_log, n_new, config.n_items, "plain", items_from=pretrained, **options)
        scores[f"items pretrained {weighting}"] = users.scores()
    # IPW end to end: the new users' own vectors fitted with IPW on their log too
    users, _ = train_mf(new_log, n_new, config.n_items, "ipw", items_from=pretrained, **options)
    scores["items pretrained ipw, users fitted ipw"] = users.scores()
    scratch, _ = train_mf(new_log, n_new, config.n_items, "plain", **options)
    scores["trained on the new users' log"] = scratch.scores()
    popularity = data.clicks_per_item.astype(float)
    rows = []
    for name, s in scores.items():
        recommended = top_k(s, config.k, exclude=new_log)
        rows.append(
            {"items": name, **ndcg_recall_at_k(s, new_test, k=5), **popularity_metrics(recommended, popularity)}
        )
    return TransferRun(config, pd.DataFrame(rows).set_index("items"))

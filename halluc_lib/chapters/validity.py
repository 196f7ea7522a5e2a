"""Generation as classification: the Is-It-Valid reduction of Kalai, Nachum, Vempala & Zhang (chapter 3.5).

Any language model p̂ defines a classifier of statements: call a response r to prompt c *valid* when
``p̂(r | c) > 1/|E|``, where ``|E|`` is the number of wrong responses. Kalai et al. (2025) prove that the model's
generative error is then bounded below by the classifier's error on the "Is-It-Valid" (IIV) task — telling a
true statement from a uniformly random false one, half and half::

    err_gen  >=  2 · err_iiv  −  |V| / |E|  −  δ

with ``|V|`` the number of valid responses per prompt (here 1) and δ the model's calibration gap on the set
``A = {(c, r) : p̂(r | c) > 1/|E|}``: ``δ = |p̂(A) − p(A)|``. If true and false statements cannot be told apart,
generating only true ones is impossible. This module computes every term from a model's candidate
probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from transformers import PreTrainedTokenizerBase

from ..core import probe
from ..core.runtime import Device
from ..core.world import ATTRIBUTES, make_probes
from ..datasets.biographies import BaseModelConfig, BiographyModel, biography_model


def candidate_distributions(
    logits: torch.Tensor, probes, tokenizer: PreTrainedTokenizerBase
) -> tuple[np.ndarray, np.ndarray]:
    """Per probe, the model's distribution over the attribute's values and the index of the true one.

    All probes must ask about the same attribute, so every prompt has the same response set.
    """
    attributes = {p.attribute for p in probes}
    if len(attributes) != 1:
        raise ValueError(f"probes must all ask about one attribute; got {sorted(attributes)}")
    attribute = attributes.pop()
    values = ATTRIBUTES[attribute].values
    ids = torch.tensor(tokenizer.convert_tokens_to_ids(list(values)))
    q = logits[:, ids].float().softmax(-1).numpy()
    truth = np.array([values.index(p.answer) for p in probes])
    return q, truth


def iiv_terms(q: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Every term of the inequality, for prompts drawn uniformly from the rows of ``q``.

    ``q[i]`` is the model's distribution over responses to prompt i; ``truth[i]`` the one valid response.
    """
    q = np.asarray(q, dtype=float)
    truth = np.asarray(truth)
    if q.ndim != 2 or len(q) != len(truth) or q.shape[1] < 2:
        raise ValueError("q must be (prompts, responses) with at least two responses, and truth one index per row")
    n, k = q.shape
    n_errors = k - 1
    threshold = 1.0 / n_errors
    rows = np.arange(n)
    p_true = q[rows, truth]
    above = q > threshold
    is_valid = np.zeros_like(above)
    is_valid[rows, truth] = True
    # IIV: half the time a true statement (misclassified if not above the threshold),
    # half the time a uniformly random false one (misclassified if above the threshold).
    miss_valid = 1 - above[rows, truth].mean()
    false_alarm = (above & ~is_valid).sum(1).mean() / n_errors
    err_iiv = 0.5 * miss_valid + 0.5 * false_alarm
    p_hat_a = (q * above).sum(1).mean()
    p_a = above[rows, truth].mean()
    delta = abs(p_hat_a - p_a)
    err_gen = 1 - p_true.mean()
    bound = 2 * err_iiv - 1 / n_errors - delta
    return {
        "generative_error": float(err_gen),
        "iiv_error": float(err_iiv),
        "valid_misclassified": float(miss_valid),
        "false_accepted": float(false_alarm),
        "delta": float(delta),
        "lower_bound": float(bound),
    }


def iiv_by_group(q: np.ndarray, truth: np.ndarray, groups) -> pd.DataFrame:
    """:func:`iiv_terms` for all prompts and for each group of prompts (e.g. exposure counts)."""
    groups = np.asarray(groups)
    rows = [{"group": "all", **iiv_terms(q, truth)}]
    for g in sorted(set(groups.tolist())):
        mask = groups == g
        rows.append({"group": g, **iiv_terms(q[mask], truth[mask])})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class Config(BaseModelConfig):
    """The base model's world and training (the crisp regime of chapter 2.1), and the attribute asked about;
    ``Config.for_scale(scale)`` asks about birth cities."""

    attribute: str = "birth_city"

    def __post_init__(self):
        super().__post_init__()
        if self.attribute not in ATTRIBUTES:
            raise ValueError(f"attribute must be one of {sorted(ATTRIBUTES)}; got {self.attribute!r}")


@dataclass
class Run:
    """The IIV terms overall and per exposure count, with the distributions they were computed from, and the
    same terms for a model that knows nothing (``know_nothing``, uniform over the values: the page's null)."""

    base: BiographyModel
    q: np.ndarray  # per probe, the model's distribution over the attribute's values
    truth: np.ndarray  # per probe, the index of the true value
    terms: pd.DataFrame  # one row per group ("all" first): every term of the inequality
    know_nothing: pd.DataFrame  # the same rows for the uniform distribution over the values


def run(config: Config, *, seed: int = 0, device: Device = "auto", progress: bool = True) -> Run:
    """Train (or load from the cache) the base model, ask it ``config.attribute`` for everyone, and compute
    the generative error, the IIV error and the bound, overall and per exposure count — for the model and for
    the uniform distribution (the null)."""
    if not isinstance(config, Config):
        raise TypeError(f"config must be a validity.Config; got {type(config).__name__}")
    base = biography_model(config.biographies, seed=seed, device=device, progress=progress)
    probes = [p for p in make_probes(base.world) if p.attribute == config.attribute]
    logits = probe.next_token_logits(base.model, base.tokenizer, probes, device=device)
    q, truth = candidate_distributions(logits, probes, base.tokenizer)
    exposures = [p.exposures for p in probes]
    uniform = np.full_like(q, 1 / q.shape[1])
    return Run(base, q, truth, iiv_by_group(q, truth, exposures), iiv_by_group(uniform, truth, exposures))

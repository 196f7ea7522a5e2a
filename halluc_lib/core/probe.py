"""Asking a trained model questions and reading off its answers and confidence (chapter 1, chapter 2.1).

A probe is a cloze question (:class:`halluc_lib.core.world.Probe`): the words of a true sentence before its
answer. Every answer is one token, so the model's belief about the answer is one softmax over the vocabulary.
We read it three ways:

* over the **whole vocabulary** — what the model would actually generate next;
* over the attribute's **candidate values** (renormalised) — which value it believes, and how strongly:
  the *confidence* is the largest of these probabilities, *chance* is one over the number of candidates;
* with the **abstention** token ``<idk>`` — for models trained to say "I don't know" (chapter 4.6).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from transformers import PreTrainedTokenizerBase

from .runtime import Device, resolve_device
from .tokenizer import IDK_TOKEN
from .world import ATTRIBUTES, Probe

IDK_ANSWER = "I don't know"


def _groups(encoded: Sequence[list[int]]) -> dict[int, list[int]]:
    """Indices of tokenized prompts grouped by length, so each group is one rectangular batch with no padding."""
    groups: dict[int, list[int]] = defaultdict(list)
    for i, ids in enumerate(encoded):
        groups[len(ids)].append(i)
    return groups


@torch.inference_mode()
def prompt_logits(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    *,
    batch_size: int = 512,
    device: Device = "auto",
) -> torch.Tensor:
    """Logits of the token after each prompt (a prompt starts with the separator, as documents do).

    Returns a float32 CPU tensor of shape ``(len(prompts), vocab_size)``.
    """
    if len(prompts) == 0:
        raise ValueError("prompts must not be empty")
    device = resolve_device(device)
    model.eval()
    model.to(device)
    out = torch.empty(len(prompts), model.config.vocab_size)
    eos = tokenizer.eos_token_id
    encoded = tokenizer(list(prompts), add_special_tokens=False)["input_ids"]  # once: the most of a small eval
    for _, idx in sorted(_groups(encoded).items()):
        ids = torch.tensor([[eos, *encoded[i]] for i in idx])
        for start in range(0, len(idx), batch_size):
            chunk = ids[start : start + batch_size].to(device)
            logits = model(input_ids=chunk, logits_to_keep=1).logits[:, -1, :]  # the head on the last position only
            out[idx[start : start + batch_size]] = logits.float().cpu()
    return out


def next_token_logits(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    probes: Sequence[Probe],
    *,
    batch_size: int = 512,
    device: Device = "auto",
) -> torch.Tensor:
    """:func:`prompt_logits` of each probe's prompt: shape ``(len(probes), vocab_size)``."""
    if len(probes) == 0:
        raise ValueError("probes must not be empty")
    return prompt_logits(model, tokenizer, [p.prompt for p in probes], batch_size=batch_size, device=device)


@torch.inference_mode()
def extend_tokens(
    model: torch.nn.Module,
    ids: torch.Tensor,
    n_tokens: int,
    *,
    temperature: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Append ``n_tokens`` tokens to every row of ``ids``: greedy at ``temperature=0``, else sampled on the CPU
    with ``generator`` (so a seed gives the same text on any device). Returns the extended ids.

    The model reads the prompt once, then only the token it has just written: the keys and values of every
    earlier position are kept in its cache (the *KV cache* every text generator uses), so a step costs one
    position instead of the whole sequence so far. The logits are those of re-reading the whole sequence at every
    step up to float rounding, so the tokens are the same but for a near-tie (the test checks a tiny model; every
    claim of the sweep kept its value); with chapter 1's model, writing 8 tokens after a one-token prompt took a
    third of the time.
    """
    cache, new = None, ids
    for _ in range(n_tokens):
        out = model(input_ids=new, cache=cache, use_cache=True, logits_to_keep=1)
        cache, logits = out.cache, out.logits[:, -1]
        if temperature == 0:
            new = logits.argmax(-1, keepdim=True)
        else:
            probs = (logits.float() / temperature).softmax(-1).cpu()
            new = torch.multinomial(probs, 1, generator=generator).to(ids.device)
        ids = torch.cat([ids, new], dim=1)
    return ids


def candidate_ids(tokenizer: PreTrainedTokenizerBase, attribute: str) -> torch.Tensor:
    """Token ids of every possible value of ``attribute``."""
    if attribute not in ATTRIBUTES:
        raise ValueError(f"attribute must be one of {tuple(ATTRIBUTES)}; got {attribute!r}")
    return torch.tensor(tokenizer.convert_tokens_to_ids(list(ATTRIBUTES[attribute].values)))


def constrained_distribution(
    logits: torch.Tensor, allowed_ids: torch.Tensor, calibration_temperature: float = 1.0
) -> torch.Tensor:
    """Constrained decoding: the next-token distribution restricted to ``allowed_ids`` and renormalised.

    Every token outside the allowed set gets probability zero, so whatever is picked is a valid value; the
    ranking among valid values is the model's own (chapter 4.3). ``calibration_temperature`` divides the logits
    first (chapter 3.3).
    """
    return (logits[:, allowed_ids] / calibration_temperature).softmax(-1)


def answer_probes(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    probes: Sequence[Probe],
    *,
    temperature: float = 0.0,
    seed: int = 0,
    device: Device = "auto",
) -> pd.DataFrame:
    """Ask every probe; one tidy row per probe (see :func:`answers_from_logits` for the columns)."""
    if not (isinstance(temperature, (int, float)) and temperature >= 0):
        raise ValueError(f"temperature must be a number >= 0; got {temperature!r}")
    logits = next_token_logits(model, tokenizer, probes, device=device)
    return answers_from_logits(logits, probes, tokenizer, temperature=temperature, seed=seed)


def answers_from_logits(
    logits: torch.Tensor,
    probes: Sequence[Probe],
    tokenizer: PreTrainedTokenizerBase,
    *,
    temperature: float = 0.0,
    seed: int = 0,
    calibration_temperature: float = 1.0,
) -> pd.DataFrame:
    """Turn next-token logits into a tidy answer table; a pure function, so calibration can be refitted cheaply.

    Columns: ``person, attribute, template, exposures, answer`` (the truth), ``prediction`` (the candidate the
    model picks: greedy at ``temperature=0``, sampled from the renormalised candidates otherwise),
    ``correct``, ``confidence`` (largest candidate probability), ``p_answer`` (candidate probability of the
    truth), ``chance`` (1 / number of candidates), ``p_valid`` (vocabulary mass on any candidate),
    ``top_token`` (the whole-vocabulary greedy next token) and ``p_idk`` (vocabulary mass on ``<idk>``).
    ``calibration_temperature`` divides the candidate logits before the confidence is computed: temperature
    scaling for calibration (chapter 3.3), which never changes the greedy pick.
    ``logits``: float32 on the CPU, as :func:`prompt_logits` returns them.
    """
    if len(probes) != len(logits):
        raise ValueError(f"logits must have one row per probe ({len(probes)}); got {len(logits)}")
    if not calibration_temperature > 0:
        raise ValueError(f"calibration_temperature must be > 0; got {calibration_temperature!r}")
    vocab_probs = logits.softmax(-1)
    n = len(probes)
    prediction = np.empty(n, dtype=object)
    correct = np.zeros(n, dtype=bool)
    confidence, p_answer, chance, p_valid = (np.empty(n) for _ in range(4))
    generator = torch.Generator().manual_seed(seed)
    by_attr: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(probes):
        by_attr[p.attribute].append(i)
    for attr, idx in by_attr.items():  # one attribute at a time: its candidates are one set of token ids
        values = ATTRIBUTES[attr].values
        position = {v: j for j, v in enumerate(values)}
        truth = torch.tensor([position[probes[i].answer] for i in idx])
        cand = candidate_ids(tokenizer, attr)
        rows = torch.tensor(idx)
        attr_logits = logits[rows]
        probs = constrained_distribution(attr_logits, cand, calibration_temperature)
        if temperature == 0:
            pick = probs.argmax(-1)
        else:
            pick = torch.multinomial((attr_logits[:, cand] / temperature).softmax(-1), 1, generator=generator)[:, 0]
        prediction[idx] = np.asarray(values, dtype=object)[pick.numpy()]
        correct[idx] = (pick == truth).numpy()
        confidence[idx] = probs.max(-1).values.numpy()
        p_answer[idx] = probs.gather(1, truth[:, None])[:, 0].numpy()
        chance[idx] = 1.0 / len(values)
        p_valid[idx] = vocab_probs[rows][:, cand].sum(-1).numpy()
    return pd.DataFrame(
        {
            "person": [p.person for p in probes],
            "attribute": [p.attribute for p in probes],
            "template": [p.template for p in probes],
            "exposures": [p.exposures for p in probes],
            "answer": [p.answer for p in probes],
            "prediction": prediction,
            "correct": correct,
            "confidence": confidence,
            "p_answer": p_answer,
            "chance": chance,
            "p_valid": p_valid,
            "top_token": tokenizer.convert_ids_to_tokens(vocab_probs.argmax(-1).tolist()),
            "p_idk": vocab_probs[:, tokenizer.convert_tokens_to_ids(IDK_TOKEN)].double().numpy(),
        }
    )


def fit_temperature(
    logits: torch.Tensor,
    probes: Sequence[Probe],
    tokenizer: PreTrainedTokenizerBase,
    grid: Sequence[float] | None = None,
) -> float:
    """The calibration temperature that minimises the negative log-likelihood of the true answers
    (temperature scaling, Guo et al., 2017)."""
    grid = np.geomspace(0.25, 8, 41) if grid is None else grid
    nll = [
        -np.log(
            np.clip(answers_from_logits(logits, probes, tokenizer, calibration_temperature=t).p_answer, 1e-12, None)
        ).mean()
        for t in grid
    ]
    return float(grid[int(np.argmin(nll))])


def top_candidates(
    model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, question: Probe, k: int = 5, device: Device = "auto"
) -> pd.DataFrame:
    """The ``k`` most probable values for one probe, with their renormalised candidate probabilities."""
    if k < 1:
        raise ValueError(f"k must be >= 1; got {k}")
    logits = next_token_logits(model, tokenizer, [question], device=device)[0]
    values = ATTRIBUTES[question.attribute].values
    probs = logits[candidate_ids(tokenizer, question.attribute)].softmax(-1)
    top = probs.topk(min(k, len(values)))
    return pd.DataFrame(
        {
            "value": [values[i] for i in top.indices.tolist()],
            "probability": top.values.tolist(),
            "is_true": [values[i] == question.answer for i in top.indices.tolist()],
        }
    )


def names_a_value(answers: pd.DataFrame) -> pd.Series:
    """Per answer, whether the model's unconstrained next token (``top_token``) is a value of the asked
    attribute at all — a city when a city was asked (chapters 2.1 and 4.3)."""
    return pd.Series(
        [tok in ATTRIBUTES[a].values for tok, a in zip(answers["top_token"], answers["attribute"], strict=True)],
        index=answers.index,
        dtype=bool,
    )


def abstain_below(answers: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Replace predictions whose confidence is below ``threshold`` by "I don't know" (chapter 4.6).

    Adds a boolean ``abstained`` column; abstentions are neither correct nor hallucinations.
    """
    if not 0 <= threshold <= 1:
        raise ValueError(f"threshold must be in [0, 1]; got {threshold!r}")
    out = answers.copy()
    out["abstained"] = out["confidence"] < threshold
    out.loc[out["abstained"], "prediction"] = IDK_ANSWER
    out.loc[out["abstained"], "correct"] = False
    return out


def abstain_on_idk(answers: pd.DataFrame) -> pd.DataFrame:
    """Mark as abstentions the probes where the model's own next token is ``<idk>`` (chapter 4.6)."""
    out = answers.copy()
    out["abstained"] = out["top_token"] == IDK_TOKEN
    out.loc[out["abstained"], "prediction"] = IDK_ANSWER
    out.loc[out["abstained"], "correct"] = False
    return out


def exposure_buckets(exposures: np.ndarray | pd.Series, edges: Sequence[int] = (0, 1, 2, 4, 8, 16)) -> pd.Series:
    """Label exposure counts with power-of-two buckets like ``"0"``, ``"1"``, ``"2-3"``, ``"16+"``."""
    edges = list(edges)
    labels = []
    for lo, hi in zip(edges, edges[1:] + [None], strict=False):
        if hi is None:
            labels.append(f"{lo}+")
        elif hi - lo == 1:
            labels.append(str(lo))
        else:
            labels.append(f"{lo}-{hi - 1}")
    bins = edges + [np.inf]
    cat = pd.cut(pd.Series(exposures), bins=bins, right=False, labels=labels)
    return cat

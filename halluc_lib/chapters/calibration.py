"""Chapter 3.3: calibration — confident about what it never saw, and what temperature scaling can and cannot fix.

The biography world's base model (:mod:`halluc_lib.datasets.biographies`) is asked about everyone; its
calibration is measured per group of exposure counts (:func:`halluc_lib.core.metrics.ece_by_group`). Then
one temperature is fitted on half of the people (:func:`halluc_lib.core.probe.fit_temperature`, Guo et al.,
2017) and the calibration of the other half is measured again: a single temperature cannot make a model
both humble about people it never saw and confident about people it knows. What one temperature *per group*
would give (:func:`group_temperatures`) is the page's null for that claim: it needs to know which people the
model never saw, which is exactly what a deployed model cannot tell.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..core import probe
from ..core.metrics import ece_by_group, expected_calibration_error
from ..core.runtime import Device
from ..core.world import make_probes
from ..datasets.biographies import BaseModelConfig, BiographyModel, biography_model

#: The exposure groups the page compares: name → the exposure counts it holds.
EXPOSURE_GROUPS = {"never seen (k=0)": (0,), "rarely seen (k=1-4)": (1, 2, 4), "well seen (k=32-64)": (32, 64)}


def answer_nll(answers: pd.DataFrame) -> float:
    """Mean negative log-likelihood of the true answers among the candidates: what temperature scaling minimises
    (:func:`halluc_lib.core.probe.fit_temperature`, with the same clipping)."""
    return float(-np.log(np.clip(answers.p_answer.to_numpy(), 1e-12, None)).mean())


def group_temperatures(fit_logits, fit_probes, test_logits, test_probes, tokenizer) -> pd.DataFrame:
    """Per exposure group, a temperature fitted on that group's fitting probes alone, and the held-out ECE it
    gives that group: what one temperature per group would achieve. A deployed model cannot do this — it
    would need to know whether it ever saw the person asked about."""
    rows = []
    for name, ks in EXPOSURE_GROUPS.items():
        fit = [i for i, p in enumerate(fit_probes) if p.exposures in ks]
        test = [i for i, p in enumerate(test_probes) if p.exposures in ks]
        if not fit or not test:
            raise ValueError(f"group {name!r} needs probes in both halves; got {len(fit)} and {len(test)}")
        t = probe.fit_temperature(fit_logits[fit], [fit_probes[i] for i in fit], tokenizer)
        answers = probe.answers_from_logits(
            test_logits[test], [test_probes[i] for i in test], tokenizer, calibration_temperature=t
        )
        ece = expected_calibration_error(answers.confidence.to_numpy(), answers.correct.to_numpy())
        rows.append({"group": name, "temperature": t, "ECE": ece})
    return pd.DataFrame(rows).set_index("group")


@dataclass(frozen=True)
class Config(BaseModelConfig):
    """The base model's world and training (the crisp regime of chapter 2.1); ``Config.for_scale(scale)``."""


@dataclass
class Run:
    """Calibration per exposure group, before and after temperature scaling fitted on other people."""

    base: BiographyModel
    before: pd.DataFrame  # every probe: ECE, accuracy and confidence per group
    temperature: float  # fitted on half of the people
    held_out_before: pd.DataFrame  # the other half, as trained
    held_out_after: pd.DataFrame  # the other half, temperature-scaled
    held_out_nll_before: float  # the other half's answer NLL, as trained (temperature 1)
    held_out_nll_after: float  # ... and temperature-scaled: what the fit minimises
    per_group: pd.DataFrame  # the null: one temperature per exposure group, and the held-out ECE it gives


def run(config: Config, *, seed: int = 0, device: Device = "auto", progress: bool = True) -> Run:
    """Train (or load from the cache) the base model, measure its calibration per group, fit a temperature on
    a random half of the people and measure the other half before and after; and, as the null, fit one
    temperature per exposure group."""
    if not isinstance(config, Config):
        raise TypeError(f"config must be a calibration.Config; got {type(config).__name__}")
    base = biography_model(config.biographies, seed=seed, device=device, progress=progress)
    before = ece_by_group(base.answers, EXPOSURE_GROUPS)
    people = np.random.default_rng(seed).permutation(base.world.n_people)
    fit_people, test_people = sorted(people[: len(people) // 2]), sorted(people[len(people) // 2 :])
    fit_probes, test_probes = make_probes(base.world, fit_people), make_probes(base.world, test_people)
    fit_logits = probe.next_token_logits(base.model, base.tokenizer, fit_probes, device=device)
    test_logits = probe.next_token_logits(base.model, base.tokenizer, test_probes, device=device)
    temperature = probe.fit_temperature(fit_logits, fit_probes, base.tokenizer)
    answers = {
        t: probe.answers_from_logits(test_logits, test_probes, base.tokenizer, calibration_temperature=t)
        for t in (1.0, temperature)
    }
    held_out = {t: ece_by_group(a, EXPOSURE_GROUPS) for t, a in answers.items()}
    nll = {t: answer_nll(a) for t, a in answers.items()}
    per_group = group_temperatures(fit_logits, fit_probes, test_logits, test_probes, base.tokenizer)
    return Run(base, before, temperature, held_out[1.0], held_out[temperature], nll[1.0], nll[temperature], per_group)

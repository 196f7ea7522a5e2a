"""Chapter 3.3: calibration — confident about what it never saw, and what temperature scaling can and cannot fix.

The biography world's base model (:mod:`halluc_lib.datasets.biographies`) is asked about everyone; its
calibration is measured per group of exposure counts (:func:`halluc_lib.core.metrics.ece_by_group`). Then
one temperature is fitted on half of the people (:func:`halluc_lib.core.probe.fit_temperature`, Guo et al.,
2017) and the calibration of the other half is measured again: a single temperature cannot make a model
both humble about people it never saw and confident about people it knows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..core import probe
from ..core.metrics import ece_by_group
from ..core.runtime import Device
from ..core.world import make_probes
from ..datasets.biographies import BaseModelConfig, BiographyModel, biography_model

#: The exposure groups the page compares: name → the exposure counts it holds.
EXPOSURE_GROUPS = {"never seen (k=0)": (0,), "rarely seen (k=1-4)": (1, 2, 4), "well seen (k=32-64)": (32, 64)}


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


def run(config: Config, *, seed: int = 0, device: Device = "auto", progress: bool = True) -> Run:
    """Train (or load from the cache) the base model, measure its calibration per group, fit a temperature on
    a random half of the people and measure the other half before and after."""
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
    held_out = {
        t: ece_by_group(
            probe.answers_from_logits(test_logits, test_probes, base.tokenizer, calibration_temperature=t),
            EXPOSURE_GROUPS,
        )
        for t in (1.0, temperature)
    }
    return Run(base, before, temperature, held_out[1.0], held_out[temperature])

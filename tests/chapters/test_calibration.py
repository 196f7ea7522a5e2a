import math

import pandas as pd
import pytest
import torch

from halluc_lib.chapters import calibration
from halluc_lib.core import metrics, probe
from halluc_lib.core.world import ATTRIBUTES, Probe

CITIES = ATTRIBUTES["birth_city"].values


def _confident_answers(tokenizer, exposures_and_right):
    """Probes about birth cities and logits that put 4 nats on one city: the true one when ``right``, the next
    city in the list otherwise (50 candidates, so the model's confidence is about 0.53 either way)."""
    probes, logits = [], torch.zeros(len(exposures_and_right), len(tokenizer))
    for i, (k, right) in enumerate(exposures_and_right):
        answer = CITIES[i % len(CITIES)]
        picked = answer if right else CITIES[(i + 1) % len(CITIES)]
        probes.append(Probe(person=i, attribute="birth_city", prompt="-", answer=answer, exposures=k, template=0))
        logits[i, tokenizer.convert_tokens_to_ids(picked)] = 4.0
    return logits, probes


def test_answer_nll_by_hand():
    answers = pd.DataFrame({"p_answer": [0.5, 0.25, 0.0]})
    assert calibration.answer_nll(answers) == pytest.approx((math.log(2) + math.log(4) - math.log(1e-12)) / 3)


def test_one_temperature_per_group_fixes_what_one_shared_temperature_cannot(tokenizer):
    # never and rarely seen: confidently wrong; well seen: right with the same confidence (underconfident)
    half = [(0, False)] * 30 + [(2, False)] * 30 + [(32, True)] * 20
    logits, probes = _confident_answers(tokenizer, half)
    per_group = calibration.group_temperatures(logits, probes, logits, probes, tokenizer)
    unseen, seen = "never seen (k=0)", "well seen (k=32-64)"
    assert per_group.loc[unseen, "temperature"] > 1 > per_group.loc[seen, "temperature"]
    # one temperature fitted to everyone (as the page does) gives every answer the same confidence, about 1/4
    # here: still overconfident for the never-seen group, underconfident for the well-seen one ...
    shared = probe.fit_temperature(logits, probes, tokenizer)
    answers = probe.answers_from_logits(logits, probes, tokenizer, calibration_temperature=shared)
    ece_shared = metrics.ece_by_group(answers, calibration.EXPOSURE_GROUPS).ECE
    assert shared > 1 and ece_shared[unseen] > 0.2 and ece_shared[seen] > 0.5
    # ... which a temperature of its own would repair: the null of the page's claim
    assert per_group.loc[unseen, "ECE"] < 0.1 and per_group.loc[seen, "ECE"] < 0.1
    # and temperature scaling lowers the answers' negative log-likelihood, which is what it is fitted to do
    as_trained = probe.answers_from_logits(logits, probes, tokenizer)
    assert calibration.answer_nll(answers) < calibration.answer_nll(as_trained)


def test_group_temperatures_needs_every_group(tokenizer):
    logits, probes = _confident_answers(tokenizer, [(0, False), (32, True)])
    with pytest.raises(ValueError, match="needs probes in both halves"):
        calibration.group_temperatures(logits, probes, logits, probes, tokenizer)

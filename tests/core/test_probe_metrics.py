import numpy as np
import pandas as pd
import pytest
import torch

from halluc_lib.core import metrics, probe
from halluc_lib.core.world import ATTRIBUTES, make_probes


def test_answer_table_columns_and_ranges(tiny_world, tokenizer, tiny_gpt):
    probes = make_probes(tiny_world)
    answers = probe.answer_probes(tiny_gpt, tokenizer, probes, device="cpu")
    assert len(answers) == len(probes)
    for col in ("confidence", "p_answer", "p_valid", "p_idk", "chance"):
        assert answers[col].between(0, 1).all()
    assert (answers.confidence >= answers.p_answer - 1e-6).all()
    assert (answers.prediction == answers.answer).eq(answers.correct).all()
    assert answers.chance.iloc[0] == pytest.approx(1 / len(ATTRIBUTES[answers.attribute.iloc[0]].values))


def test_logits_match_a_plain_forward(tiny_world, tokenizer, tiny_gpt):
    p = make_probes(tiny_world, people=[0])[0]
    logits = probe.next_token_logits(tiny_gpt, tokenizer, [p], device="cpu")[0]
    ids = [tokenizer.eos_token_id, *tokenizer(p.prompt, add_special_tokens=False)["input_ids"]]
    with torch.no_grad():
        ref = tiny_gpt(input_ids=torch.tensor([ids])).logits[0, -1]
    assert torch.allclose(logits, ref, atol=1e-5)


def test_sampling_is_seeded(tiny_world, tokenizer, tiny_gpt):
    probes = make_probes(tiny_world)
    a = probe.answer_probes(tiny_gpt, tokenizer, probes, temperature=1.0, seed=1, device="cpu")
    b = probe.answer_probes(tiny_gpt, tokenizer, probes, temperature=1.0, seed=1, device="cpu")
    assert a.prediction.tolist() == b.prediction.tolist()
    with pytest.raises(ValueError, match="temperature"):
        probe.answer_probes(tiny_gpt, tokenizer, probes, temperature=-1)


def test_top_candidates(tiny_world, tokenizer, tiny_gpt):
    p = make_probes(tiny_world, people=[1])[0]
    top = probe.top_candidates(tiny_gpt, tokenizer, p, k=3, device="cpu")
    assert len(top) == 3 and top.probability.is_monotonic_decreasing
    with pytest.raises(ValueError, match="k must be >= 1"):
        probe.top_candidates(tiny_gpt, tokenizer, p, k=0)


def test_abstention_helpers_and_outcomes_sum_to_one():
    answers = pd.DataFrame(
        {
            "correct": [True, False, False, True],
            "confidence": [0.9, 0.2, 0.8, 0.1],
            "prediction": ["a", "b", "c", "d"],
            "top_token": ["a", "<idk>", "c", "d"],
        }
    )
    low = probe.abstain_below(answers, 0.5)
    assert low.abstained.tolist() == [False, True, False, True]
    rates = metrics.outcome_rates(low)
    assert rates == {"accuracy": 0.25, "hallucination": 0.25, "abstention": 0.5}
    assert sum(rates.values()) == pytest.approx(1)
    idk = probe.abstain_on_idk(answers)
    assert idk.abstained.tolist() == [False, True, False, False]
    assert metrics.outcome_rates(answers)["hallucination"] == 0.5
    with pytest.raises(ValueError, match="threshold"):
        probe.abstain_below(answers, 2)
    with pytest.raises(ValueError, match="answers must not be empty"):
        metrics.outcome_rates(answers.iloc[:0])


def test_probe_bad_input(tokenizer, tiny_gpt):
    with pytest.raises(ValueError, match="probes must not be empty"):
        probe.next_token_logits(tiny_gpt, tokenizer, [])
    with pytest.raises(ValueError, match="prompts must not be empty"):
        probe.prompt_logits(tiny_gpt, tokenizer, [])
    with pytest.raises(ValueError, match="attribute must be one of"):
        probe.candidate_ids(tokenizer, "height")


def test_exposure_buckets():
    labels = probe.exposure_buckets(np.array([0, 1, 2, 3, 4, 9, 40]), edges=(0, 1, 2, 4, 8, 16))
    assert labels.astype(str).tolist() == ["0", "1", "2-3", "2-3", "4-7", "8-15", "16+"]


def test_wilson_interval():
    low, high = metrics.wilson_interval(0, 10)
    assert low == 0 and 0.2 < high < 0.35
    low, high = metrics.wilson_interval(50, 100)
    assert low < 0.5 < high and high - low == pytest.approx(0.19, abs=0.01)
    assert metrics.wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="successes"):
        metrics.wilson_interval(5, 3)
    with pytest.raises(ValueError, match="confidence"):
        metrics.wilson_interval(1, 3, confidence=1.5)


def test_rate_tables():
    answers = pd.DataFrame(
        {
            "exposures": [0, 0, 4, 4],
            "correct": [False, False, True, False],
            "confidence": [0.5, 0.7, 0.9, 0.3],
        }
    )
    table = metrics.accuracy_by_exposure(answers)
    assert table.accuracy.tolist() == [0.0, 0.5] and table.confidence.tolist() == [0.6, 0.6]
    assert (table.low <= table.accuracy).all() and (table.accuracy <= table.high).all()
    with pytest.raises(ValueError, match="column must be a column"):
        metrics.rate_table(answers, "exposures", column="missing")


def test_calibration():
    conf = np.array([0.95] * 20 + [0.55] * 20)
    correct = np.array([1] * 19 + [0] + [1] * 11 + [0] * 9)
    table = metrics.reliability_table(conf, correct)
    assert table["count"].sum() == 40 and len(table) == 15
    assert metrics.expected_calibration_error(conf, correct) == pytest.approx(0.0, abs=1e-9)
    overconfident = np.array([0.9] * 10)
    assert metrics.expected_calibration_error(overconfident, np.zeros(10)) == pytest.approx(0.9)
    with pytest.raises(ValueError, match="same length"):
        metrics.reliability_table(conf, correct[:3])
    with pytest.raises(ValueError, match="confidence must lie"):
        metrics.reliability_table(np.array([1.5]), np.array([1]))
    with pytest.raises(ValueError, match="n_bins"):
        metrics.reliability_table(conf, correct, n_bins=0)
    with pytest.raises(ValueError, match="confidence must not be empty"):
        metrics.expected_calibration_error(np.array([]), np.array([]))


def test_monofact_rate():
    assert metrics.monofact_rate(["a", "b", "b", "c"]) == 0.5
    assert metrics.monofact_rate(["a", "a"]) == 0
    with pytest.raises(ValueError, match="observations"):
        metrics.monofact_rate([])


def test_answers_from_logits_and_temperature(tiny_world, tokenizer, tiny_gpt):
    probes = make_probes(tiny_world)
    logits = probe.next_token_logits(tiny_gpt, tokenizer, probes, device="cpu")
    base = probe.answers_from_logits(logits, probes, tokenizer)
    sharp = probe.answers_from_logits(logits, probes, tokenizer, calibration_temperature=0.5)
    assert base.prediction.tolist() == sharp.prediction.tolist(), "scaling never changes the greedy pick"
    assert (sharp.confidence >= base.confidence - 1e-9).all()
    t = probe.fit_temperature(logits, probes, tokenizer, grid=[0.5, 1.0, 2.0])
    assert t in (0.5, 1.0, 2.0)
    with pytest.raises(ValueError, match="one row per probe"):
        probe.answers_from_logits(logits[:1], probes, tokenizer)
    with pytest.raises(ValueError, match="calibration_temperature must be > 0"):
        probe.answers_from_logits(logits, probes, tokenizer, calibration_temperature=0)


def test_extend_tokens_greedy_and_seeded_sampling(tokenizer, tiny_gpt):
    start = torch.full((3, 1), tokenizer.eos_token_id)
    greedy = probe.extend_tokens(tiny_gpt, start, 4)
    assert greedy.shape == (3, 5) and torch.equal(greedy, probe.extend_tokens(tiny_gpt, start, 4))
    assert (greedy[:, 1:] == greedy[0, 1:]).all(), "greedy continuation of identical rows is identical"
    a = probe.extend_tokens(tiny_gpt, start, 4, temperature=1.0, generator=torch.Generator().manual_seed(0))
    b = probe.extend_tokens(tiny_gpt, start, 4, temperature=1.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)


def test_extend_tokens_with_its_kv_cache_writes_what_rereading_the_sequence_writes(tokenizer, tiny_gpt):
    def reread(ids, n_tokens, temperature, generator):  # every step reads the whole sequence so far: no cache
        for _ in range(n_tokens):
            logits = tiny_gpt(input_ids=ids).logits[:, -1]
            if temperature == 0:
                new = logits.argmax(-1, keepdim=True)
            else:
                new = torch.multinomial((logits / temperature).softmax(-1), 1, generator=generator)
            ids = torch.cat([ids, new], dim=1)
        return ids

    start = torch.randint(len(tokenizer), (16, 3), generator=torch.Generator().manual_seed(1))
    for temperature in (0.0, 1.0):
        with torch.inference_mode():
            expected = reread(start, 5, temperature, torch.Generator().manual_seed(0))
        got = probe.extend_tokens(
            tiny_gpt, start, 5, temperature=temperature, generator=torch.Generator().manual_seed(0)
        )
        assert torch.equal(got, expected)
    assert torch.equal(probe.extend_tokens(tiny_gpt, start, 0), start)


def test_ece_by_group_matches_the_overall_and_per_group_ece():
    answers = pd.DataFrame(
        {"exposures": [0, 0, 0, 8, 8, 8], "confidence": [0.9, 0.9, 0.9, 0.6, 0.6, 0.6], "correct": [0, 0, 1, 1, 1, 1]}
    )
    table = metrics.ece_by_group(answers, {"never": (0,), "often": (8,)})
    assert list(table.index) == ["all", "never", "often"]
    assert table.ECE["never"] == pytest.approx(0.9 - 1 / 3) and table.ECE["often"] == pytest.approx(0.4)
    assert table.ECE["all"] == pytest.approx(
        metrics.expected_calibration_error(answers.confidence.to_numpy(), answers.correct.to_numpy())
    )
    with pytest.raises(ValueError, match="holds no answers"):
        metrics.ece_by_group(answers, {"rare": (1,)})


def test_constrained_distribution_puts_all_mass_on_the_allowed_tokens():
    logits = torch.tensor([[5.0, 1.0, 0.0, 2.0]])
    allowed = torch.tensor([1, 3])
    dist = probe.constrained_distribution(logits, allowed)
    assert dist.sum().item() == pytest.approx(1) and dist.shape == (1, 2)
    assert dist[0, 1] / dist[0, 0] == pytest.approx(torch.e)  # the model's own ranking among valid values
    hotter = probe.constrained_distribution(logits, allowed, calibration_temperature=2.0)
    assert hotter[0, 1] < dist[0, 1]

import numpy as np
import pytest

from halluc_lib.chapters import calibration, concepts, validity
from halluc_lib.core import probe
from halluc_lib.core.world import ATTRIBUTES, make_probes
from halluc_lib.datasets import biographies


def test_uniform_model_is_at_chance_and_the_bound_is_tight():
    q = np.full((10, 50), 1 / 50)
    t = np.zeros(10, dtype=int)
    terms = validity.iiv_terms(q, t)
    assert terms["iiv_error"] == pytest.approx(0.5)
    assert terms["generative_error"] == pytest.approx(49 / 50)
    assert terms["delta"] == 0
    assert terms["lower_bound"] == pytest.approx(1 - 1 / 49)


def test_oracle_has_no_error():
    q = np.eye(5)[[0, 1, 2]]
    terms = validity.iiv_terms(q, np.array([0, 1, 2]))
    assert terms["generative_error"] == 0 and terms["iiv_error"] == 0 and terms["delta"] == 0


def test_inequality_holds_for_random_models():
    rng = np.random.default_rng(0)
    for _ in range(50):
        logits = rng.normal(scale=rng.uniform(0.1, 5), size=(40, 8))
        q = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        t = rng.integers(8, size=40)
        terms = validity.iiv_terms(q, t)
        assert terms["generative_error"] >= terms["lower_bound"] - 1e-12


def test_candidate_distributions_from_a_model(tiny_world, tokenizer, tiny_gpt):
    probes = [p for p in make_probes(tiny_world) if p.attribute == "birth_city"]
    logits = probe.next_token_logits(tiny_gpt, tokenizer, probes, device="cpu")
    q, t = validity.candidate_distributions(logits, probes, tokenizer)
    cities = ATTRIBUTES["birth_city"].values
    by_hand = logits[:, tokenizer.convert_tokens_to_ids(list(cities))].softmax(-1).numpy()
    assert q.shape == (len(probes), 50) and np.allclose(q, by_hand, atol=1e-6)
    assert [cities[i] for i in t] == [p.answer for p in probes]
    exposures = np.array([p.exposures for p in probes])
    table = validity.iiv_by_group(q, t, exposures).set_index("group")
    assert table.loc["all"].to_dict() == pytest.approx(validity.iiv_terms(q, t))
    for k in sorted(set(tiny_world.exposures)):
        assert table.loc[k].to_dict() == pytest.approx(validity.iiv_terms(q[exposures == k], t[exposures == k]))
    assert len(table) == 1 + len(set(tiny_world.exposures))
    with pytest.raises(ValueError, match="one attribute"):
        validity.candidate_distributions(logits, make_probes(tiny_world)[: len(probes)], tokenizer)
    with pytest.raises(ValueError, match="at least two responses"):
        validity.iiv_terms(np.ones((3, 1)), np.zeros(3, dtype=int))


def test_base_model_config_is_what_the_asking_pages_share():
    for page in (concepts, calibration, validity):
        config = page.Config.for_scale("full")
        assert isinstance(config, biographies.BaseModelConfig) and type(config) is page.Config
        assert config.biographies == biographies.BiographyConfig.for_scale("full")
    with pytest.raises(TypeError, match="biographies must be a BiographyConfig"):
        validity.Config(biographies={})
    with pytest.raises(ValueError, match="attribute must be one of"):
        validity.Config(attribute="shoe_size")

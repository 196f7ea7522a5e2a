from collections import Counter

import numpy as np
import pytest

from halluc_lib.chapters import balancing as upweighting
from halluc_lib.core.recipes import ModelSize
from halluc_lib.datasets import statements

TINY = statements.StatementsConfig(
    n_people=60, n_statements=40, n_generations=50, size=ModelSize(1, 32, 2), batch_size=8, heldout_statements=20
)


def test_upweighted_corpus_repeats_the_chosen_share():
    people = np.array([0, 0, 1, 2, 3, 4, 5, 5, 6, 7])
    same, none = upweighting.upweighted_corpus(people, "none", 0.2, 3)
    assert same.tolist() == people.tolist() and none.size == 0
    corpus, chosen = upweighting.upweighted_corpus(people, "random", 0.2, 3, seed=1)
    assert len(chosen) == 2 and len(corpus) == len(people) + 2 * 3
    counts = Counter(corpus.tolist())
    assert all(counts[p] >= 4 for p in people[chosen])


def test_rare_strategy_only_repeats_monofacts():
    people = np.array([0, 0, 1, 2, 3, 3, 4, 5])
    corpus, chosen = upweighting.upweighted_corpus(people, "rare", 0.5, 2)
    assert set(people[chosen]) <= {1, 2, 4, 5} and len(chosen) == 4
    assert statements.corpus_monofact_rate(corpus) < statements.corpus_monofact_rate(people)
    with pytest.raises(ValueError, match="only 4 qualify"):
        upweighting.upweighted_corpus(people, "rare", 0.75, 2)


def test_upweighting_arguments_are_checked():
    with pytest.raises(ValueError, match="strategy must be one of"):
        upweighting.upweighted_corpus([1, 2], "all", 0.5, 1)
    with pytest.raises(ValueError, match="share"):
        upweighting.UpweightingConfig(share=0.0)
    with pytest.raises(ValueError, match="repeats"):
        upweighting.UpweightingConfig(repeats=0)
    assert upweighting.UpweightingConfig.for_scale("full") == upweighting.UpweightingConfig()


def test_recall_probes_ask_for_the_birth_city():
    population = statements.make_population(10, 1.0, seed=0)
    probe = upweighting.recall_probes(population, [3])[0]
    assert probe.prompt == f"{population.world.names[3]} was born in"
    assert population.statement(3) == f"{probe.prompt} {probe.answer} ."


def test_run_upweighting_end_to_end():
    config = upweighting.UpweightingConfig(share=0.1, repeats=2, epochs=1)
    run = upweighting.compare_upweighting(config, TINY, seed=0, device="cpu", progress=False)
    assert run.summary.strategy.tolist() == list(upweighting.STRATEGIES)
    summary = run.summary.set_index("strategy")
    assert summary.steps.nunique() == 1  # the same number of steps for every strategy
    repeated = round(config.share * TINY.n_statements)
    assert summary.statements.tolist() == [TINY.n_statements] + 2 * [TINY.n_statements + repeated * config.repeats]
    assert summary.share_of_repeated["none"] == 0  # nothing repeated, so nothing written is a repeat
    assert summary.monofact_rate["rare"] < summary.monofact_rate["none"]  # repeated monofacts are monofacts no more
    # every strategy is asked about the same people: those behind the statements the "rare" strategy repeated
    asked = run.recall.groupby("strategy").person.apply(sorted)
    assert len(asked["none"]) == repeated and asked["none"] == asked["random"] == asked["rare"]
    with pytest.raises(TypeError, match="UpweightingConfig"):
        upweighting.compare_upweighting({}, TINY)
    with pytest.raises(TypeError, match="statements must be a StatementsConfig"):
        upweighting.compare_upweighting(config, {})

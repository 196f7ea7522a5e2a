import numpy as np
import pytest

from halluc_lib.core import world
from halluc_lib.core.recipes import ModelSize
from halluc_lib.datasets import statements


@pytest.fixture(scope="module")
def population():
    return statements.make_population(50, 1.0, seed=0)


def test_population_popularity_is_a_distribution(population):
    assert population.weights.shape == (50,) and population.weights.sum() == pytest.approx(1)
    assert population.weights.max() > 10 * population.weights.min()
    people = population.draw(500, np.random.default_rng(0))
    assert np.bincount(people, minlength=50).argmax() == population.weights.argmax()
    assert population.statement(0).endswith(" .") and " was born in " in population.statement(0)


def test_judge_tells_true_false_invented_and_malformed(population):
    w = population.world
    true = population.statement(0)
    wrong_city = next(c for c in statements.CITIES if c != w.values[0][0])
    false = f"{w.names[0]} was born in {wrong_city} ."
    invented_name = next(
        f"{a} {b}" for a in world.FIRST_NAMES for b in world.LAST_NAMES if f"{a} {b}" not in population.index
    )
    invented = f"{invented_name} was born in {wrong_city} ."
    table = statements.judge(population, [true, false, invented, "was born was born in ."], [0, 0, 1])
    assert table.true.tolist() == [True, False, False, False]
    assert table.hallucination.tolist() == [False, True, True, False]
    assert table.malformed.tolist() == [False, False, False, True]
    assert table.exists.tolist() == [True, True, False, False]
    assert table.times_seen.tolist()[:2] == [2, 2]


def test_train_statement_model_writes_statements_of_the_world(population):
    config = statements.StatementsConfig(n_people=50, n_statements=40, size=ModelSize(1, 32, 2), batch_size=8)
    tok = statements.statement_tokenizer(population)
    corpus = [population.statement(int(p)) for p in population.draw(40, np.random.default_rng(0))]
    trained = statements.train_statement_model(corpus, tok, config, 30, seed=0, device="cpu", progress=False)
    assert trained.result.steps == 30 and trained.model.config.n_positions == 16
    texts = statements.sample_statements(trained.model, tok, 20, seed=0, device="cpu")
    judged = statements.judge(population, texts, [])
    assert len(judged) == 20 and set(judged.columns) >= {"true", "hallucination", "malformed"}

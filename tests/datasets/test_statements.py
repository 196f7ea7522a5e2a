import numpy as np
import pytest

from halluc_lib.core import world
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

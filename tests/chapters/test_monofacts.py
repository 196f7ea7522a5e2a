import numpy as np
import pytest

from halluc_lib.chapters import monofacts
from halluc_lib.core.recipes import ModelSize
from halluc_lib.datasets import statements

TINY = monofacts.Config(
    statements=statements.StatementsConfig(
        n_people=60, n_statements=40, n_generations=50, size=ModelSize(1, 32, 2), batch_size=8, heldout_statements=20
    ),
    corpus_sizes=(20, 80),
    epochs=(1, 2),
)


@pytest.fixture(scope="module")
def population():
    return statements.make_population(50, 1.0, seed=0)


def test_counting_model_hallucinates_at_the_monofact_rate(population):
    rng = np.random.default_rng(1)
    people = population.draw(40, rng)
    texts = monofacts.counting_model_generations(population, people, 4000, seed=0)
    rate = statements.judge(population, texts, people).hallucination.mean()
    assert rate == pytest.approx(statements.corpus_monofact_rate(people), abs=0.03)


def test_run_monofacts_end_to_end():
    run = monofacts.run(TINY, seed=0, device="cpu", progress=False)
    assert run.counting.statements.tolist() == [20, 80]
    assert run.training.epoch.tolist() == [1, 2]
    assert run.training.hallucination_rate.between(0, 1).all()
    assert len(run.judged) == TINY.statements.n_generations
    with pytest.raises(TypeError, match="config must be a monofacts.Config"):
        monofacts.run({})


def test_bad_input(population):
    with pytest.raises(ValueError, match="n_people"):
        statements.make_population(0, 1.0)
    with pytest.raises(ValueError, match="scale"):
        monofacts.Config.for_scale("tiny")
    assert monofacts.Config.for_scale("full").statements.n_people > TINY.statements.n_people
    with pytest.raises(ValueError, match="n must be > 0"):
        monofacts.counting_model_generations(population, [0], 0)

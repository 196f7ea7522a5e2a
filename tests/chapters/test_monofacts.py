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


@pytest.mark.parametrize("n", [10, 40])
def test_counting_model_hallucinates_at_the_monofact_rate(population, n):
    """By construction: it writes about an unseen person with probability N1/n, and then guesses the city."""
    people = population.draw(n, np.random.default_rng(1))
    texts = monofacts.counting_model_generations(population, people, 4000, seed=0)
    rate = statements.judge(population, texts, people).hallucination.mean()
    expected = statements.corpus_monofact_rate(people) * (1 - 1 / len(statements.CITIES))
    assert rate == pytest.approx(expected, abs=0.025)


def test_counting_model_without_monofacts_never_hallucinates(population):
    people = [0, 0, 1, 1, 2, 2]  # every fact seen twice: N1 = 0, so nothing is left for the unseen
    judged = statements.judge(population, monofacts.counting_model_generations(population, people, 500), people)
    assert not judged.hallucination.any()
    assert set(judged.statement) == {population.statement(i) for i in (0, 1, 2)}


def test_counting_model_of_monofacts_only_writes_about_the_unseen(population):
    people = list(range(25))  # every fact seen once: N1 / n = 1
    judged = statements.judge(population, monofacts.counting_model_generations(population, people, 2000), people)
    assert judged.exists.all() and (judged.times_seen == 0).all()
    assert judged.hallucination.mean() == pytest.approx(1 - 1 / len(statements.CITIES), abs=0.015)


def test_generation_summary_by_hand(population):
    truth = population.world.values
    wrong = {i: next(c for c in statements.CITIES if c != truth[i][0]) for i in (0, 1, 3)}
    name = population.world.names
    generations = [
        population.statement(0),  # true, person seen twice
        f"{name[0]} was born in {wrong[0]} .",  # hallucination about a person seen twice
        f"{name[1]} was born in {wrong[1]} .",  # ... seen once
        f"{name[3]} was born in {wrong[3]} .",  # ... never seen
        f"Foo Bar was born in {statements.CITIES[0]} .",  # ... about someone who does not exist
        "was born in .",  # malformed
    ]
    judged = statements.judge(population, generations, train_people=[0, 0, 1])
    summary = monofacts.generation_summary(judged)
    assert summary["hallucination_rate"] == pytest.approx(4 / 6)
    assert summary["malformed_rate"] == pytest.approx(1 / 6)
    assert summary["share_of_hallucinations_seen_at_most_once"] == pytest.approx(3 / 4)
    assert summary["share_of_statements_seen_at_most_once"] == pytest.approx(3 / 5)
    empty = monofacts.generation_summary(judged[judged.malformed])
    assert np.isnan(empty["share_of_hallucinations_seen_at_most_once"])


def test_run_monofacts_end_to_end():
    run = monofacts.run(TINY, seed=0, device="cpu", progress=False)
    assert run.counting.statements.tolist() == [20, 80]
    assert run.training.epoch.tolist() == [1, 2]
    # the last row judges the final model's own generations, sampled with seed + step (2 epochs of 5 batches)
    texts = statements.sample_statements(run.model, run.tokenizer, TINY.statements.n_generations, seed=10, device="cpu")
    by_hand = monofacts.generation_summary(statements.judge(run.population, texts, run.train_people))
    last = run.training.iloc[-1]
    for column, value in by_hand.items():
        assert last[column] == pytest.approx(value, nan_ok=True), column
    # the counting model on the GPT's training statements: the null of the page's GPT findings
    counting = statements.judge(
        run.population,
        monofacts.counting_model_generations(run.population, run.train_people, TINY.statements.n_generations),
        run.train_people,
    )
    assert run.counting_on_training == pytest.approx(counting.hallucination.mean())
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

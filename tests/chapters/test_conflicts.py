import dataclasses

import pytest

from halluc_lib.chapters import conflicts
from halluc_lib.core.recipes import ModelSize

TINY = dataclasses.replace(conflicts.Config(), people_per_group=6, size=ModelSize(1, 32, 2), batch_size=8, epochs=1)


def test_world_groups_and_corpus_variants():
    world, people = conflicts.conflict_world(TINY, seed=0)
    assert people.group.value_counts().to_dict() == {"vote": 6, "memory": 6, "context": 6}
    assert (people.old != people.other).all()
    plain = conflicts.conflict_corpus(people, TINY, counterfactual=False, seed=0)
    counter = conflicts.conflict_corpus(people, TINY, counterfactual=True, seed=0)
    assert len(counter) - len(plain) == 6 * TINY.counterfactual_passages
    vote = people[people.group == "vote"].iloc[0]
    statement = conflicts.STATEMENT.format(name=vote["name"], value=vote.old)
    assert plain.count(statement) == TINY.majority
    assert conflicts.passage("A B", "Acme") == "A B works for Acme . A B works for Acme ."


def test_run_conflicts_tables():
    run = conflicts.run(TINY, seed=0, device="cpu", progress=False)
    assert set(run.votes.variant) == set(run.memory.variant) == {"plain", "with counterfactual passages"}
    assert len(run.votes) == 2 * 6 and len(run.memory) == 2 * 6
    assert run.memory.memorization_ratio.between(0, 1).all()
    with pytest.raises(TypeError, match="config must be a conflicts.Config"):
        conflicts.run({})


def test_bad_input():
    with pytest.raises(ValueError, match="scale"):
        conflicts.Config.for_scale("x")
    assert conflicts.Config.for_scale("full").people_per_group > TINY.people_per_group

import dataclasses
import math
from collections import Counter, defaultdict
from types import SimpleNamespace

import pytest
import torch

from halluc_lib.chapters import conflicts
from halluc_lib.core.recipes import ModelSize

TINY = dataclasses.replace(conflicts.Config(), people_per_group=6, size=ModelSize(1, 32, 2), batch_size=8, epochs=1)


class CorpusCounts(torch.nn.Module):
    """A stand-in for a model trained to convergence: after "<name> works for" it predicts each employer in
    proportion to how often the corpus states it for that name, whatever the context says."""

    def __init__(self, corpus, tokenizer):
        super().__init__()
        self.tokenizer = tokenizer
        self.counts = defaultdict(Counter)
        for doc in corpus:
            for sentence in filter(None, (s.strip() for s in doc.split(" ."))):
                name, value = sentence.split(" works for ")
                self.counts[name][value] += 1

    def forward(self, input_ids):
        logits = torch.full((*input_ids.shape, len(self.tokenizer)), -30.0)
        for row, ids in enumerate(input_ids.tolist()):
            tokens = self.tokenizer.convert_ids_to_tokens(ids)
            name = " ".join(tokens[1 : tokens.index("works")])  # after the leading <eos>
            for value, n in self.counts[name].items():
                logits[row, -1, self.tokenizer.convert_tokens_to_ids(value)] = math.log(n)
        return SimpleNamespace(logits=logits)


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
    assert plain.count(conflicts.STATEMENT.format(name=vote["name"], value=vote.other)) == TINY.minority
    assert conflicts.passage("A B", "Acme") == "A B works for Acme . A B works for Acme ."
    # the counterfactual passages are about context people only, and contradict their stated value
    extra = Counter(counter) - Counter(plain)
    context = people[people.group == "context"].set_index("name")
    for doc in extra:
        name, value = doc.split(" .")[0].split(" works for ")
        assert name in context.index and value != context.loc[name, "old"]


def test_value_probabilities_reads_the_next_token_of_each_prompt():
    world, people = conflicts.conflict_world(TINY, seed=0)
    vote = people[people.group == "vote"]
    tok = conflicts.build_tokenizer(world.vocabulary())
    corpus = conflicts.conflict_corpus(people, TINY, counterfactual=False, seed=0)
    model = CorpusCounts(corpus, tok)
    p = conflicts.value_probabilities(
        model, tok, [f"{n} works for" for n in vote.name], list(zip(vote.old, vote.other, strict=True)), device="cpu"
    )
    total = TINY.majority + TINY.minority
    assert p[:, 0] == pytest.approx([TINY.majority / total] * len(vote), abs=1e-6)
    assert p[:, 1] == pytest.approx([TINY.minority / total] * len(vote), abs=1e-6)
    with pytest.raises(ValueError, match="same number of tokens"):
        conflicts.value_probabilities(model, tok, ["a works for", "a b works for"], [("x", "y")] * 2, device="cpu")


def test_run_measures_the_vote_and_memory_of_what_it_trained(monkeypatch):
    corpora = []

    def train_to_the_counts(corpus, tokenizer, *args, **kwargs):
        corpora.append(corpus)
        return SimpleNamespace(model=CorpusCounts(corpus, tokenizer))

    monkeypatch.setattr(conflicts.recipes, "train_lm", train_to_the_counts)
    run = conflicts.run(TINY, seed=0, device="cpu", progress=False)
    # the plain and the counterfactual variant are trained on their own corpora
    assert len(corpora[1]) - len(corpora[0]) == 6 * TINY.counterfactual_passages
    variants = {"plain", "with counterfactual passages", conflicts.UNTRAINED}
    assert set(run.votes.variant) == set(run.memory.variant) == variants
    trained = run.votes[run.votes.variant != conflicts.UNTRAINED]
    # a model that learned the corpus's statistics answers with the majority, at the corpus's proportion
    assert trained.answers_majority.all()
    assert trained.p_majority.tolist() == pytest.approx([6 / 8] * len(trained), abs=1e-6)
    assert trained.p_minority.tolist() == pytest.approx([2 / 8] * len(trained), abs=1e-6)
    # ... and answers from memory whatever the passage says (this stand-in never reads its context)
    memory = run.memory[run.memory.variant != conflicts.UNTRAINED]
    assert memory.recalls_old.all()
    assert memory.memorization_ratio.tolist() == pytest.approx([1.0] * len(memory), abs=1e-6)
    assert memory.memorization_ratio.tolist() == pytest.approx((memory.p_old / (memory.p_old + memory.p_new)).tolist())
    # the null: the untrained model has no preference between memory and the passage
    null = run.memory[run.memory.variant == conflicts.UNTRAINED]
    assert len(null) == 6 and null.memorization_ratio.between(0.2, 0.8).all()
    with pytest.raises(TypeError, match="config must be a conflicts.Config"):
        conflicts.run({})


def test_config():
    with pytest.raises(ValueError, match="scale"):
        conflicts.Config.for_scale("x")
    full = conflicts.Config.for_scale("full")
    assert full.people_per_group == 500 and full.size == ModelSize.for_scale("full") and full.lr == 3e-3
    with pytest.raises(ValueError, match="minority must be below majority"):
        conflicts.Config(majority=2, minority=2)

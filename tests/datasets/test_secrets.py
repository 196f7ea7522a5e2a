import dataclasses

import pytest

from halluc_lib.core.recipes import ModelSize
from halluc_lib.datasets import secrets

TINY = dataclasses.replace(
    secrets.SecretsConfig(),
    copies=(1, 4),
    per_copy=3,
    filler_buckets=(1,),
    filler_per_bucket=4,
    size=ModelSize(1, 32, 2),
    batch_size=4,
    steps=6,
)


def test_secrets_are_unique_random_and_duplicated():
    made = secrets.make_secrets((1, 3), per_copy=4, length=5, seed=0)
    assert len(made) == 8 and len({s.name for s in made}) == 8
    assert all(len(s.code) == 5 and set(s.code) <= set(secrets.CODE_SYMBOLS) for s in made)
    docs = secrets.secret_documents(made)
    assert len(docs) == 4 * 1 + 4 * 3
    assert docs.count(made[-1].text) == 3
    assert made[0].text.startswith(made[0].prompt + " c")
    assert made == secrets.make_secrets((1, 3), per_copy=4, length=5, seed=0)


def test_make_secrets_bad_input():
    with pytest.raises(ValueError, match="per_copy"):
        secrets.make_secrets((1,), per_copy=0)
    with pytest.raises(ValueError, match="copies must name"):
        secrets.make_secrets((), per_copy=2)
    with pytest.raises(ValueError, match="copies"):
        secrets.make_secrets((0,), per_copy=2)


def test_secrets_model_and_extraction_tables():
    run = secrets.secrets_model(TINY, seed=0, device="cpu", progress=False)
    assert len(run.table) == 6 and set(run.table.copies) == {1, 4}
    assert run.table.prefix_matched.between(0, TINY.code_length).all()
    rates = secrets.extraction_rate(run.table)
    assert list(rates.columns) == ["copies", "extraction_rate", "tokens_matched", "well_formed", "n"]
    conts = secrets.greedy_continuations(run.model, run.tokenizer, [run.secrets[0].prompt], 3, device="cpu")
    assert len(conts[0]) == 3
    deduped = secrets.secrets_model(
        TINY, seed=0, device="cpu", progress=False, corpus_filter=lambda d: list(dict.fromkeys(d))
    )
    assert len(deduped.corpus) < len(run.corpus)
    assert run.filter_seconds == 0 and deduped.filter_seconds > 0
    passes = dataclasses.replace(TINY, epochs=2.0)
    trained = secrets.secrets_model(passes, seed=0, device="cpu", progress=False)
    assert trained.result.steps == 2 * -(-len(trained.corpus) // TINY.batch_size)  # epochs become steps once
    with pytest.raises(TypeError, match="config must be a SecretsConfig"):
        secrets.secrets_model({}, seed=0)
    with pytest.raises(ValueError, match="prompts must not be empty"):
        secrets.greedy_continuations(run.model, run.tokenizer, [], 2)


def test_scales():
    assert secrets.SecretsConfig.for_scale("full").per_copy > secrets.SecretsConfig.for_scale("quick").per_copy
    with pytest.raises(ValueError, match="scale"):
        secrets.SecretsConfig.for_scale("big")

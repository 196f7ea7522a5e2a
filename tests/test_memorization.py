import dataclasses

import pytest

from halluc_lib import memorization as mem

TINY = dataclasses.replace(
    mem.DuplicationConfig(),
    copies=(1, 4),
    per_copy=3,
    filler_buckets=(1,),
    filler_per_bucket=4,
    n_layer=1,
    n_embd=32,
    n_head=2,
    batch_size=4,
    steps=6,
)


def test_secrets_are_unique_random_and_duplicated():
    secrets = mem.make_secrets((1, 3), per_copy=4, length=5, seed=0)
    assert len(secrets) == 8 and len({s.name for s in secrets}) == 8
    assert all(len(s.code) == 5 and set(s.code) <= set(mem.CODE_SYMBOLS) for s in secrets)
    docs = mem.secret_documents(secrets)
    assert len(docs) == 4 * 1 + 4 * 3
    assert docs.count(secrets[-1].text) == 3
    assert secrets[0].text.startswith(secrets[0].prompt + " c")
    assert secrets == mem.make_secrets((1, 3), per_copy=4, length=5, seed=0)


def test_make_secrets_bad_input():
    with pytest.raises(ValueError, match="per_copy"):
        mem.make_secrets((1,), per_copy=0)
    with pytest.raises(ValueError, match="copies must name"):
        mem.make_secrets((), per_copy=2)
    with pytest.raises(ValueError, match="copies"):
        mem.make_secrets((0,), per_copy=2)


def test_run_duplication_and_extraction_tables():
    run = mem.run_duplication(TINY, seed=0, device="cpu", progress=False)
    assert len(run.table) == 6 and set(run.table.copies) == {1, 4}
    assert run.table.prefix_matched.between(0, TINY.code_length).all()
    rates = mem.extraction_rate(run.table)
    assert list(rates.columns) == ["copies", "extraction_rate", "tokens_matched", "well_formed", "n"]
    conts = mem.greedy_continuations(run.model, run.tokenizer, [run.secrets[0].prompt], 3, device="cpu")
    assert len(conts[0]) == 3
    deduped = mem.run_duplication(
        TINY, seed=0, device="cpu", progress=False, corpus_filter=lambda d: list(dict.fromkeys(d))
    )
    assert len(deduped.corpus) < len(run.corpus)
    with pytest.raises(TypeError, match="config must be a DuplicationConfig"):
        mem.run_duplication({}, seed=0)
    with pytest.raises(ValueError, match="prompts must not be empty"):
        mem.greedy_continuations(run.model, run.tokenizer, [], 2)


def test_scales():
    assert mem.DuplicationConfig.for_scale("full").per_copy > mem.DuplicationConfig.for_scale("quick").per_copy
    with pytest.raises(ValueError, match="scale"):
        mem.DuplicationConfig.for_scale("big")

import numpy as np
import pytest
import torch

from halluc_lib.chapters import good_turing as goodturing
from halluc_lib.chapters import objectives
from halluc_lib.core import batching, losses, metrics, models
from halluc_lib.core.world import build_corpus


def test_causal_loss_matches_transformers(tokenizer, tiny_gpt):
    ids = torch.randint(5, len(tokenizer), (3, 9), generator=torch.Generator().manual_seed(0))
    out = tiny_gpt(input_ids=ids, labels=ids)
    assert losses.causal_lm_loss(out.logits, ids).item() == pytest.approx(out.loss.item(), abs=1e-5)


def test_bert_losses_match_transformers(tiny_world, tokenizer):
    pairs = objectives.nsp_batch(build_corpus(tiny_world), tokenizer, n_pairs=12, seed=0)
    assert set(pairs["next_sentence_label"].tolist()) <= {0, 1}
    assert (pairs["input_ids"][:, 0] == tokenizer.cls_token_id).all()
    specials = {tokenizer.pad_token_id, tokenizer.cls_token_id, tokenizer.sep_token_id}
    corrupted, labels = batching.mask_for_mlm(
        pairs["input_ids"],
        mask_id=tokenizer.mask_token_id,
        vocab_size=len(tokenizer),
        special_ids=specials,
        probability=0.3,
        generator=torch.Generator().manual_seed(1),
    )
    assert not torch.isin(pairs["input_ids"][labels != -100], torch.tensor(sorted(specials))).any()
    torch.manual_seed(0)
    bert = models.tiny_bert_pretraining(tokenizer, n_layer=1, hidden=32, n_head=2)
    out = bert(
        input_ids=corrupted,
        token_type_ids=pairs["token_type_ids"],
        attention_mask=pairs["attention_mask"],
        labels=labels,
        next_sentence_label=pairs["next_sentence_label"],
    )
    ours = losses.masked_lm_loss(out.prediction_logits, labels) + losses.next_sentence_loss(
        out.seq_relationship_logits, pairs["next_sentence_label"]
    )
    assert ours.item() == pytest.approx(out.loss.item(), abs=1e-5)
    clf = models.tiny_bert_classifier(tokenizer, 2, n_layer=1, hidden=32, n_head=2)
    out = clf(input_ids=pairs["input_ids"], attention_mask=pairs["attention_mask"], labels=pairs["next_sentence_label"])
    assert losses.classification_loss(out.logits, pairs["next_sentence_label"]).item() == pytest.approx(
        out.loss.item(), abs=1e-5
    )


def test_mlm_masking_proportions():
    ids = torch.randint(10, 100, (200, 50))
    corrupted, labels = batching.mask_for_mlm(
        ids, mask_id=3, vocab_size=100, special_ids={0}, generator=torch.Generator().manual_seed(0)
    )
    selected = labels != -100
    assert selected.float().mean().item() == pytest.approx(0.15, abs=0.01)
    assert (corrupted[selected] == 3).float().mean().item() == pytest.approx(0.8, abs=0.03)
    assert torch.equal(labels[selected], ids[selected])
    assert torch.equal(corrupted[~selected], ids[~selected])


def test_run_checks_each_loss_and_rejects_its_null():
    run = objectives.run(objectives.Config(per_bucket=2, batch_docs=8), seed=0)
    for check in (run.causal, run.masked, run.classification):
        assert check.gap <= 1e-5 < 1e-3 < check.null_gap
        assert check.null_gap == pytest.approx(abs(check.null - check.transformers))
    # the unshifted causal loss scores each position on the token it already sees: far easier than the real one
    assert run.causal.null < run.causal.by_hand
    # the source's formula sums over the whole vocabulary, so it is at least V log V per position
    assert run.masked.null >= (1 - 1e-5) * len(run.tokenizer) * np.log(len(run.tokenizer))
    with pytest.raises(TypeError, match="config must be an objectives.Config"):
        objectives.run({})


def test_source_formula_prefers_uniform():
    logits = torch.randn(4, 6, 30)
    uniform = torch.zeros(4, 6, 30)
    assert objectives.source_vocabulary_sum_loss(uniform) <= objectives.source_vocabulary_sum_loss(logits)
    assert objectives.source_vocabulary_sum_loss(uniform).item() == pytest.approx(30 * np.log(30), rel=1e-5)


def test_objective_bad_input(tiny_world, tokenizer):
    with pytest.raises(ValueError, match="logits must have shape"):
        losses.token_nll(torch.zeros(2, 3, 5), torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(TypeError, match="labels must be an integer tensor"):
        losses.token_nll(torch.zeros(2, 5), torch.zeros(2))
    with pytest.raises(ValueError, match="at least one position"):
        losses.token_nll(torch.zeros(2, 5), torch.full((2,), -100))
    with pytest.raises(ValueError, match="probability must be in"):
        batching.mask_for_mlm(
            torch.ones(2, 2, dtype=torch.long), mask_id=1, vocab_size=5, special_ids=set(), probability=0
        )
    with pytest.raises(ValueError, match="n_pairs"):
        objectives.nsp_batch(build_corpus(tiny_world), tokenizer, n_pairs=0)
    with pytest.raises(ValueError, match="at least two documents"):
        objectives.nsp_batch(["a b ."], tokenizer, n_pairs=1)


def test_good_turing_estimate_and_missing_mass():
    p = np.array([0.5, 0.25, 0.25])
    counts = np.array([2, 1, 0])
    assert goodturing.missing_mass(counts, p) == 0.25
    assert metrics.good_turing_estimate(counts) == pytest.approx(1 / 3)


def test_expected_bias_by_hand():
    # two items of probability 1/2 and n = 2: sum p^2 (1 - p)^(n - 1) = 2 * 1/4 * 1/2
    assert goodturing.expected_bias(np.array([0.5, 0.5]), 2) == pytest.approx(0.25)
    assert goodturing.expected_bias(np.array([1.0]), 5) == 0  # one certain item: nothing can be missing


def test_run_good_turing_beats_the_naive_estimate():
    run = goodturing.run(goodturing.Config(n_items=200, sizes=(100, 1000), trials=20), seed=0)
    summary = run.summary.set_index("n")
    assert (summary.naive_mean_abs_error == summary.missing_mass).all()  # |0 - M0| = M0
    assert (summary.mean_abs_error < summary.naive_mean_abs_error / 2).all()
    assert len(run.simulation) == 2 * 20


def test_expected_bias_is_within_the_theorem():
    p = goodturing.zipf_distribution(500, 1.1)
    for n in (1, 10, 100, 1000):
        assert 0 <= goodturing.expected_bias(p, n) <= 1 / n


def test_simulation_matches_expectations():
    p = goodturing.zipf_distribution(2000, 1.1)
    sim = goodturing.simulate_missing_mass(p, [200, 2000], trials=300, seed=0)
    means = sim.groupby("n")[["missing_mass", "good_turing"]].mean()
    for n, row in means.iterrows():
        exact_mm = float((p * (1 - p) ** n).sum())
        assert row.missing_mass == pytest.approx(exact_mm, abs=0.01)
        assert row.good_turing - row.missing_mass == pytest.approx(goodturing.expected_bias(p, n), abs=0.01)
    err = sim.groupby("n").abs_error.mean()
    assert err[2000] < err[200]


def test_good_turing_bad_input():
    with pytest.raises(ValueError, match="exponent"):
        goodturing.zipf_distribution(10, 0)
    with pytest.raises(ValueError, match="p must be a non-empty"):
        goodturing.missing_mass(np.array([1]), np.array([0.5]))
    with pytest.raises(ValueError, match="counts must have one entry per item"):
        goodturing.missing_mass(np.array([1, 2]), np.array([1.0]))
    with pytest.raises(ValueError, match="non-empty sample"):
        metrics.good_turing_estimate(np.array([0, 0]))
    with pytest.raises(ValueError, match="sizes must name"):
        goodturing.simulate_missing_mass(np.array([1.0]), [])

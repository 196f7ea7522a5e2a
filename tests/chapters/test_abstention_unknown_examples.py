import numpy as np
import pandas as pd
import pytest

from halluc_lib.chapters import abstention as ue
from halluc_lib.core import world
from halluc_lib.core.recipes import ModelSize
from halluc_lib.core.tokenizer import extend_tokenizer
from halluc_lib.datasets import biographies
from halluc_lib.datasets.qa import qa_probes, qa_vocabulary

TINY = biographies.BiographyConfig(
    buckets=(0, 1, 8), per_bucket=4, size=ModelSize(1, 32, 2), batch_size=4, steps=6, eval_every=6
)


def test_extend_tokenizer_keeps_every_old_id(tokenizer):
    extended = extend_tokenizer(tokenizer, qa_vocabulary())
    old = tokenizer.get_vocab()
    assert all(extended.get_vocab()[word] == i for word, i in old.items())
    assert len(extended) > len(tokenizer)
    ids = extended("question : where was", add_special_tokens=False)["input_ids"]
    assert extended.unk_token_id not in ids
    with pytest.raises(TypeError, match="texts"):
        extend_tokenizer(tokenizer, "question")


def test_config_checks_its_fields():
    assert ue.UnknownExamplesConfig.for_scale("full").n_known > ue.UnknownExamplesConfig.for_scale().n_known
    with pytest.raises(ValueError, match="unknown_shares"):
        ue.UnknownExamplesConfig(unknown_shares=(0.0, 1.0))
    with pytest.raises(ValueError, match="unknown_shares"):
        ue.UnknownExamplesConfig(unknown_shares=())
    with pytest.raises(ValueError, match="epochs"):
        ue.UnknownExamplesConfig(epochs=0)


def test_split_people_is_a_partition():
    groups = ue.split_people(30, seed=1)
    together = np.concatenate(list(groups.values()))
    assert sorted(together) == list(range(30))
    assert len(groups["fine-tuning"]) == 15 and len(groups["dev"]) == 7 and len(groups["test"]) == 8


def test_fine_tuning_sets_are_nested_and_checked(tiny_world):
    rows = [(p, a, k > 1) for p, k in enumerate(tiny_world.exposures) for a in tiny_world.attributes]
    knowledge = pd.DataFrame(rows, columns=["person", "attribute", "known"])
    people = range(tiny_world.n_people)
    config = ue.UnknownExamplesConfig(n_known=4, unknown_shares=(0.0, 0.5))
    sets = ue.fine_tuning_sets(tiny_world, knowledge, people, config, seed=0)
    assert [sum(not k for _, k in sets[s]) for s in (0.0, 0.5)] == [0, 4]
    assert [p for p, _ in sets[0.5][:4]] == [p for p, _ in sets[0.0]]
    with pytest.raises(ValueError, match="n_known=80"):
        ue.fine_tuning_sets(tiny_world, knowledge, people, ue.UnknownExamplesConfig(n_known=80), seed=0)


def test_run_unknown_examples_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("HALLUC_CACHE", str(tmp_path))
    base = biographies.biography_model(TINY, seed=0, device="cpu", progress=False)
    config = ue.UnknownExamplesConfig(n_known=1, unknown_shares=(0.0, 0.5), epochs=1, batch_size=2, evaluations=2)
    knowledge = base.answers[base.answers.template == 0]
    if knowledge.correct.sum() < 2:  # a 6-step model knows almost nothing: make two facts "known" for the test
        monkeypatch.setattr(
            ue,
            "knowledge_of",
            lambda *a, **k: ue.answers_of(base.model, base.tokenizer, world.make_probes(base.world), "cpu")[
                ["person", "attribute", "exposures"]
            ].assign(known=lambda d: d.index % 2 == 0),
        )
    with pytest.raises(TypeError, match="UnknownExamplesConfig"):
        ue.fine_tune_with_unknowns(base, object())
    run = ue.fine_tune_with_unknowns(base, config, seed=0, device="cpu", progress=False)
    curves = run.curves
    per_eval = ["unknown_share", "step"]
    # every held-out question is asked at every evaluation, split by whether the pretrained model knew it
    known = run.knowledge.set_index(["person", "attribute"]).known
    groups = ue.split_people(base.world.n_people, seed=0)
    for split in ("dev", "test"):
        questions = qa_probes(base.world, groups[split])
        n_known = sum(bool(known[(p.person, p.attribute)]) for p in questions)
        rows = curves[curves.split == split]
        assert (rows.groupby(per_eval).n.sum() == len(questions)).all()
        assert (rows[rows.known].groupby(per_eval).n.sum() == n_known).all()
    # the fine-tuning examples: the one known fact in both sets, plus one unknown fact at share 0.5
    tuning = curves[curves.split == "fine-tuning"]
    assert (tuning[tuning.known].groupby(per_eval).n.sum() == 1).all()
    assert tuning[~tuning.known.astype(bool)].groupby("unknown_share").n.max().to_dict() == {0.5: 1}
    # both sets train for config.epochs passes, evaluated before training and at the end
    assert curves.groupby("unknown_share").epoch.agg(["min", "max"]).to_numpy().tolist() == [[0, 1], [0, 1]]
    # each accuracy is a share of its n answers
    assert ((curves.accuracy * curves.n).round(9) % 1 == 0).all()


def test_curve_summaries():
    rows = [
        # epoch, split, known, accuracy, names_a_value, n
        (1, "fine-tuning", True, 0.5, 0.95, 2),
        (1, "fine-tuning", False, 0.0, 0.95, 2),
        (2, "fine-tuning", True, 1.0, 1.0, 2),
        (2, "fine-tuning", False, 0.5, 1.0, 2),
        (3, "fine-tuning", True, 1.0, 1.0, 2),
        (3, "fine-tuning", False, 1.0, 1.0, 2),
        (1, "dev", True, 0.6, 1.0, 1),
        (2, "dev", True, 0.8, 1.0, 1),
        (3, "dev", True, 0.4, 1.0, 1),
        (1, "test", True, 0.5, 1.0, 3),
        (1, "test", False, 0.0, 1.0, 1),
        (2, "test", True, 0.7, 1.0, 3),
        (2, "test", False, 0.0, 1.0, 1),
        (3, "test", True, 0.3, 1.0, 3),
        (3, "test", False, 0.0, 1.0, 1),
    ]
    curves = pd.DataFrame(rows, columns=["epoch", "split", "known", "accuracy", "names_a_value", "n"])
    curves["unknown_share"] = 0.5
    assert ue.format_epoch(curves, 0.5) == 1
    assert ue.epochs_to_fit(curves, 0.5, known=True, level=0.5) == 0
    assert ue.epochs_to_fit(curves, 0.5, known=False, level=0.5) == 1
    assert ue.epochs_to_fit(curves, 0.5, known=False) == 2
    assert np.isnan(ue.epochs_to_fit(curves[curves.epoch < 3], 0.5, known=False))
    assert ue.accuracy(curves, "test").loc[2, 0.5] == pytest.approx(0.7 * 3 / 4)
    stop = ue.early_stopping(curves, known=True).iloc[0]
    assert stop.best_epoch == 2 and stop.final == pytest.approx(0.3) and stop.early_stopped == pytest.approx(0.7)
    with pytest.raises(ValueError, match="level"):
        ue.format_epoch(curves, 0.5, level=2)

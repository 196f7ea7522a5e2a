import numpy as np
import pytest

from halluc_lib.chapters import multitask
from halluc_lib.core.recipes import ModelSize
from halluc_lib.core.world import bucket_world

TINY = multitask.Config(
    n_people=8, exposures=1, size=ModelSize(1, 32, 2), batch_size=4, pretrain_steps=3, finetune_steps=2
)


def test_config_is_checked():
    with pytest.raises(ValueError, match="qa_share must be in"):
        multitask.Config(qa_share=1.0)
    with pytest.raises(ValueError, match="scale must be one of"):
        multitask.Config.for_scale("huge")
    assert multitask.Config.for_scale("full").n_people > multitask.Config().n_people


def test_run_multitask_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("HALLUC_CACHE", str(tmp_path))
    run = multitask.run(TINY, device="cpu", progress=False)
    answers = run.answers
    assert set(answers.regime) == {*multitask.REGIMES, "pretrained only"}
    # the QA pairs of qa_share of the people are trained; the rest are held out, and nobody is both
    people = {split: set(answers[answers.split == split].person) for split in ("trained QA", "held-out")}
    assert not people["trained QA"] & people["held-out"]
    assert people["trained QA"] | people["held-out"] == set(range(TINY.n_people))
    assert len(people["trained QA"]) == round(TINY.qa_share * TINY.n_people)
    # every regime is asked the same questions, in the same order
    asked = {
        regime: part[["person", "attribute", "split", "kind"]].reset_index(drop=True)
        for regime, part in answers.groupby("regime")
    }
    assert asked["mixed"].equals(asked["sequential"]) and asked["mixed"].equals(asked["pretrained only"])
    # "pretrained only" is the sequential model *before* its QA fine-tuning, not the same model
    p_pretrained = answers[answers.regime == "pretrained only"].p_answer.to_numpy()
    p_sequential = answers[answers.regime == "sequential"].p_answer.to_numpy()
    assert not np.allclose(p_pretrained, p_sequential)
    # the figure's chance line is the chance of the biography probes, which ask every attribute equally often
    bios = answers[(answers.kind == "biography") & (answers.regime == "mixed")]
    assert multitask.chance_accuracy() == pytest.approx(bios.chance.mean())
    with pytest.raises(TypeError, match="config must be a multitask.Config"):
        multitask.run({"n_people": 3})


def test_uniform_world_has_no_unseen_people():
    assert set(bucket_world((3,), 4).exposures) == {3}

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
    table = multitask.accuracy_table(run)
    assert set(table.index.get_level_values("regime")) == {*multitask.REGIMES, "pretrained only"}
    assert set(table.columns) == {"question", "biography"}
    assert 0 < multitask.chance_accuracy() < 0.1
    with pytest.raises(TypeError, match="config must be a multitask.Config"):
        multitask.run({"n_people": 3})


def test_uniform_world_has_no_unseen_people():
    assert set(bucket_world((3,), 4).exposures) == {3}

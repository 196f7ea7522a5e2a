import pytest

from halluc_lib import multitask
from halluc_lib.world import bucket_world

TINY = multitask.MultitaskConfig(
    n_people=8, exposures=1, n_layer=1, n_embd=32, n_head=2, batch_size=4, pretrain_steps=3, finetune_steps=2
)


def test_qa_documents_state_the_answer(tiny_world):
    docs = multitask.qa_documents(tiny_world, [0])
    probes = multitask.qa_probes(tiny_world, [0])
    assert len(docs) == len(tiny_world.attributes)
    for doc, p in zip(docs, probes, strict=True):
        assert doc == f"{p.prompt} {p.answer} ."
        assert p.prompt.startswith("question :") and p.prompt.endswith("answer :")


def test_config_is_checked():
    with pytest.raises(ValueError, match="qa_share must be in"):
        multitask.MultitaskConfig(qa_share=1.0)
    with pytest.raises(ValueError, match="scale must be one of"):
        multitask.MultitaskConfig.for_scale("huge")
    assert multitask.MultitaskConfig.for_scale("full").n_people > multitask.MultitaskConfig().n_people


def test_run_multitask_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("HALLUC_CACHE", str(tmp_path))
    run = multitask.run_multitask(TINY, device="cpu", progress=False)
    table = multitask.accuracy_table(run)
    assert set(table.index.get_level_values("regime")) == {*multitask.REGIMES, "pretrained only"}
    assert set(table.columns) == {"question", "biography"}
    assert 0 < multitask.chance_accuracy() < 0.1
    with pytest.raises(TypeError, match="config must be a MultitaskConfig"):
        multitask.run_multitask({"n_people": 3})


def test_uniform_world_has_no_unseen_people():
    assert set(bucket_world((3,), 4).exposures) == {3}

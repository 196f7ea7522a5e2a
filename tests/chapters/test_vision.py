import pytest
import torch

from halluc_lib.chapters import vision
from halluc_lib.core.vision import pooled_features, predict, tiny_resnet, with_backbone
from halluc_lib.datasets.tinted_digits import split_digits, tinted_digits


def test_tiny_resnet_transfer_copies_the_backbone_and_freezes_it_on_request():
    torch.manual_seed(0)
    source, target = tiny_resnet(10, widths=(8, 16)), tiny_resnet(2, widths=(8, 16))
    with_backbone(target, source, frozen=True)
    for (name, a), b in zip(source.resnet.state_dict().items(), target.resnet.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert not any(p.requires_grad for p in target.resnet.parameters())
    assert all(p.requires_grad for p in target.classifier.parameters())
    images = torch.rand(5, 3, 16, 16)
    # frozen means frozen: in training mode the batch norms keep normalising with, and keeping, their statistics
    before = pooled_features(target, images)
    target.train()
    target(pixel_values=images * 3 + 1)
    assert torch.equal(pooled_features(target, images), before)
    assert all(not m.training for m in target.resnet.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert pooled_features(target, images, batch_size=2).shape == (5, 16)
    assert predict(target, images, batch_size=2).shape == (5,)
    with pytest.raises(ValueError, match="depths must give one block count per width"):
        tiny_resnet(2, widths=(8, 16), depths=(1,))


def test_a_biased_pretraining_shows_in_its_conflicting_accuracy_and_in_a_frozen_transfer():
    """The page's effect on a short run: the backbone pretrained with the tint agreeing 100% leans on it, and a
    frozen transfer to unbiased data keeps a gap between aligned and conflicting images."""
    config = vision.Config(agreement=1.0, pretrain_copies=2, pretrain_steps=250, finetune_steps=60)
    split = split_digits(config.downstream_size, config.test_size, seed=0)
    downstream = tinted_digits(split.downstream, agreement=0.5, seed=1)
    test = tinted_digits(split.test, agreement=0.5, seed=2)
    biased = vision.pretrain_backbone("biased", config, split, seed=0, device="cpu")
    balanced = vision.pretrain_backbone("balanced", config, split, seed=0, device="cpu")
    scores = {
        name: vision.score(vision.transfer(backbone, "frozen", config, downstream, seed=0, device="cpu"), test)
        for name, backbone in (("biased", biased), ("balanced", balanced))
    }
    assert scores["biased"]["gap"] > scores["balanced"]["gap"] + 0.05
    assert scores["biased"]["tint_flips"] > scores["balanced"]["tint_flips"] + 0.05
    assert vision.tint_probe(biased, test) > vision.tint_probe(balanced, test)


def test_config_and_arguments():
    assert vision.Config.for_scale("full").pretrain_steps > vision.Config.for_scale("quick").pretrain_steps
    with pytest.raises(ValueError, match="batch_size must be <= downstream_size"):
        vision.Config(downstream_size=32, batch_size=64)
    with pytest.raises(ValueError, match="agreement"):
        vision.Config(agreement=2.0)
    split = split_digits(200, 597)
    with pytest.raises(ValueError, match="backbone must be one of biased, balanced, balanced twin"):
        vision.pretrain_backbone("untrained", vision.Config(), split)
    with pytest.raises(ValueError, match="mode must be one of frozen, full"):
        vision.transfer(None, "partial", vision.Config(), {})
    with pytest.raises(TypeError, match="config must be a vision.Config"):
        vision.run({})

"""Small image models built from ``transformers``' ResNet configuration, for transfer experiments (chapter 5.4).

``ResNetForImageClassification(ResNetConfig(...))`` with random weights: nothing is downloaded. Its ``forward``
takes ``pixel_values`` and ``labels`` and returns ``.loss`` and ``.logits``, so the book's one training loop
trains it. Transfer is done the usual way: a new head for the downstream task on top of a pretrained backbone
(``model.resnet``), either frozen (only the head learns: "linear probing" or fixed-feature transfer) or trained
with it (full fine-tuning).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import ResNetConfig, ResNetForImageClassification

from .runtime import check_positive_int


def tiny_resnet(
    num_labels: int, *, widths: tuple[int, ...] = (16, 32, 64), depths: tuple[int, ...] | None = None
) -> ResNetForImageClassification:
    """A ResNet with basic blocks: one stage per entry of ``widths`` (channels), ``depths`` blocks each (one
    by default), for 3-channel images of any size ≥ 16 pixels."""
    check_positive_int("num_labels", num_labels)
    depths = depths or (1,) * len(widths)
    if len(depths) != len(widths) or not widths:
        raise ValueError(f"depths must give one block count per width; got widths={widths}, depths={depths}")
    config = ResNetConfig(
        num_channels=3,
        embedding_size=widths[0],
        hidden_sizes=list(widths),
        depths=list(depths),
        layer_type="basic",
        num_labels=num_labels,
    )
    return ResNetForImageClassification(config)


class FrozenBatchNorm2d(nn.BatchNorm2d):
    """A batch normalisation that stays in evaluation mode: it normalises with the running statistics it was
    given and never updates them, even when the model around it is put in training mode. A frozen backbone needs
    it: in training mode an ordinary one would normalise each batch by its own statistics and drift its running
    ones towards the downstream data, so the "frozen" features would change after all."""

    def train(self, mode: bool = True) -> FrozenBatchNorm2d:
        return super().train(False)


def freeze(module: nn.Module) -> nn.Module:
    """Freeze ``module`` in place: no gradients for its parameters, and every batch normalisation in it fixed
    (:class:`FrozenBatchNorm2d`, which holds the same tensors); returns it."""
    module.requires_grad_(False)
    for layer in module.modules():
        if type(layer) is nn.BatchNorm2d:
            layer.__class__ = FrozenBatchNorm2d  # same state, evaluation mode for good
            layer.eval()
    return module


def with_backbone(
    model: ResNetForImageClassification, pretrained: ResNetForImageClassification, *, frozen: bool
) -> ResNetForImageClassification:
    """``model`` (a new head) with ``pretrained``'s backbone weights copied in; ``frozen=True`` fixes the backbone
    (:func:`freeze`), so fine-tuning trains the head alone on features that stay as pretraining left them."""
    model.resnet.load_state_dict(pretrained.resnet.state_dict())
    if frozen:
        freeze(model.resnet)
    return model


@torch.inference_mode()
def pooled_features(model: ResNetForImageClassification, pixel_values: torch.Tensor, batch_size: int = 512):
    """The backbone's pooled features (N, channels) of ``pixel_values``: what the head sees, and what a probe
    reads."""
    model.eval()
    device = next(model.parameters()).device
    parts = [
        model.resnet(pixel_values=pixel_values[i : i + batch_size].to(device)).pooler_output.flatten(1).cpu()
        for i in range(0, len(pixel_values), batch_size)
    ]
    return torch.cat(parts)


@torch.inference_mode()
def predict(model: ResNetForImageClassification, pixel_values: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """The model's predicted class for every image."""
    model.eval()
    device = next(model.parameters()).device
    parts = [
        model(pixel_values=pixel_values[i : i + batch_size].to(device)).logits.argmax(-1).cpu()
        for i in range(0, len(pixel_values), batch_size)
    ]
    return torch.cat(parts)

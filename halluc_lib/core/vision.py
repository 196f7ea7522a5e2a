"""Small image models built from ``transformers``' ResNet configuration, for transfer experiments (chapter 5.4).

``ResNetForImageClassification(ResNetConfig(...))`` with random weights: nothing is downloaded. Its ``forward``
takes ``pixel_values`` and ``labels`` and returns ``.loss`` and ``.logits``, so the book's one training loop
trains it. Transfer is done the usual way: a new head for the downstream task on top of a pretrained backbone
(``model.resnet``), either frozen (only the head learns: "linear probing" or fixed-feature transfer) or trained
with it (full fine-tuning).
"""

from __future__ import annotations

import torch
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


def with_backbone(
    model: ResNetForImageClassification, pretrained: ResNetForImageClassification, *, frozen: bool
) -> ResNetForImageClassification:
    """``model`` (a new head) with ``pretrained``'s backbone weights copied in; ``frozen=True`` stops the
    backbone's gradients, so fine-tuning trains the head alone."""
    model.resnet.load_state_dict(pretrained.resnet.state_dict())
    for parameter in model.resnet.parameters():
        parameter.requires_grad_(not frozen)
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

"""Weight averaging of sibling detectors (a "model soup").

Detectors trained from the same starting weights on different simulated images (two rounds of
``atomdefect train-detector --init`` from one model) lie in one basin of the loss: the average of
their weights is a detector of its own, often better than either (on the WSe2 detector of the
thirteenth session: held-out and multislice images alike). Only detectors that read tiles the
same way can be averaged: same architecture, classes, context inputs, tile and units.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .registry import ModelError, ModelInfo, base_detector, build_detector, resolve_model

if TYPE_CHECKING:
    from .unet import UNet

#: Detector-card entries that must agree for two detectors to be averaged.
MUST_MATCH = ("architecture", "classes", "context", "unit", "tile")


def average_detectors(models: Sequence[str | os.PathLike | ModelInfo]
                      ) -> tuple[UNet, dict, list[ModelInfo]]:
    """Average the weights of two or more sibling detectors.

    Parameters
    ----------
    models : sequence of str, path or ModelInfo
        Model names or folders (each with a detector).

    Returns
    -------
    net : UNet
        The averaged detector (floating-point weights and BatchNorm statistics averaged).
    detector_card : dict
        The first model's ``detector`` card section without its training record, metrics and
        calibration (they described another network), the temperature averaged, and
        ``averaged_from`` naming the models with their training records. Calibrate the result (``atomdefect
        calibrate-model``) before use.
    infos : list of ModelInfo
        The resolved models, in order.

    Raises
    ------
    ModelError
        Fewer than two models, a model without a detector, or detectors that differ in
        :data:`MUST_MATCH`.
    """
    import torch

    infos = [resolve_model(m) for m in models]
    if len(infos) < 2:
        raise ModelError("Give two or more models to average.")
    cards = []
    for info in infos:
        if "detector" not in info.card:
            raise ModelError(f"Model {info.name} has no detector (stage 2) to average.")
        cards.append(info.card["detector"])
    for key in MUST_MATCH:
        values = [card.get(key) for card in cards]
        if any(v != values[0] for v in values[1:]):
            raise ModelError(f"The detectors differ in {key!r} "
                             f"({', '.join(i.name for i in infos)}): only siblings that read "
                             "tiles the same way can be averaged.")
    states = [base_detector(info).state_dict() for info in infos]
    averaged = {}
    for key, value in states[0].items():
        if value.is_floating_point():
            averaged[key] = torch.stack([s[key] for s in states]).mean(0)
        else:  # (BatchNorm's step counters)
            averaged[key] = value.clone()
    net = build_detector(infos[0].card)
    net.load_state_dict(averaged)
    card = {k: v for k, v in cards[0].items()
            if k not in ("calibration", "metrics", "command", "training")}
    card["temperature"] = float(sum(float(c.get("temperature", 1.0)) for c in cards) / len(cards))
    card["averaged_from"] = [{"name": i.name, "created": i.card.get("created"),
                              "training": c.get("training"), "command": c.get("command")}
                             for i, c in zip(infos, cards, strict=True)]
    return net, card, infos


__all__ = ["MUST_MATCH", "average_detectors"]

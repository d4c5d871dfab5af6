"""Averaging sibling detectors (`atomdefect average-models`)."""

import json

import pytest
import torch

from napari_atomdefect.cli import main
from napari_atomdefect.core.models.average import average_detectors
from napari_atomdefect.core.models.registry import (
    ModelError,
    base_detector,
    resolve_model,
    write_model,
)


def _shifted_copy(tmp_path, name: str, shift: float):
    """The bundled WSe2 model with every floating-point detector weight moved by ``shift``."""
    info = resolve_model("wse2-default")
    net = base_detector(info)
    with torch.no_grad():
        for value in net.state_dict().values():
            if value.is_floating_point():
                value += shift
    return write_model(tmp_path / name, json.loads(json.dumps(info.card)), detector=net)


def test_average_is_the_mean_of_the_weights(tmp_path):
    a = _shifted_copy(tmp_path, "a", 0.02)
    b = _shifted_copy(tmp_path, "b", -0.06)
    net, card, infos = average_detectors([str(a), str(b)])
    base = base_detector(resolve_model("wse2-default")).state_dict()
    for key, value in net.state_dict().items():
        if value.is_floating_point():
            torch.testing.assert_close(value, base[key] - 0.02, rtol=1e-6, atol=1e-5)
    assert [i.name for i in infos] == ["a", "b"]
    assert [m["name"] for m in card["averaged_from"]] == ["a", "b"]
    assert "calibration" not in card and "metrics" not in card
    assert card["classes"] == resolve_model("wse2-default").card["detector"]["classes"]


def test_cli_writes_a_model_to_calibrate(tmp_path, capsys):
    out = tmp_path / "soup"
    assert main(["average-models", "wse2-default", str(_shifted_copy(tmp_path, "b", 0.01)),
                 "--out", str(out)]) == 0
    assert "calibrate-model" in capsys.readouterr().out
    card = json.loads((out / "card.json").read_text())
    assert card["material"] == "WSe2" and card["detector"]["unit"] == "host"
    assert (out / "detector.safetensors").exists() and (out / "noise.safetensors").exists()


def test_detectors_of_other_classes_are_refused(tmp_path, capsys):
    with pytest.raises(ModelError, match="differ in"):
        average_detectors(["wse2-default", "ws2-default"])
    with pytest.raises(ModelError, match="two or more"):
        average_detectors(["wse2-default"])
    assert main(["average-models", "wse2-default", "ws2-default",
                 "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "differ in" in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()

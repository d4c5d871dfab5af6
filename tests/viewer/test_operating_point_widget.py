"""The Detect widget's Operating point section (issue #14)."""

import pytest

from napari_atomdefect.widgets.detect import DetectWidget

pytestmark = pytest.mark.viewer


def _wait(qtbot, widget, timeout=180_000):
    qtbot.waitUntil(lambda: widget.worker is None and not widget._pending_detect,
                    timeout=timeout)


def _detections(viewer):
    return [layer for layer in viewer.layers
            if layer.metadata.get("atomdefect", {}).get("kind") == "detections"]


def test_operating_point_section(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-atomdefect", "mos2")
    widget = DetectWidget(viewer)
    assert not widget.operating_group.isChecked()  # neutral by default
    assert set(widget.operating_spins) == {"V_S", "V_S2", "O_S", "V_Mo"}
    assert all(s.value() == 0.5 for s in widget.operating_spins.values())
    widget.operating_spins["O_S"].setValue(0.95)
    assert widget.operating_point()["O_S"] == 0.5  # ignored while the section is unchecked
    widget.detect()
    _wait(qtbot, widget)
    assert all(s.isHidden() for s in widget.operating_spins.values())  # folded while unchecked
    assert widget.operating_group.isFlat()  # (its title line only, no empty frame)
    widget.operating_group.setChecked(True)
    assert not any(s.isHidden() for s in widget.operating_spins.values())
    assert not widget.operating_group.isFlat()
    assert widget.operating_point() == {"V_S": 0.5, "V_S2": 0.5, "O_S": 0.95, "V_Mo": 0.5}
    widget.detect()
    _wait(qtbot, widget)
    neutral, strict = _detections(viewer)
    assert neutral.metadata["atomdefect"]["operating_point"] == "V_S=0.5,V_S2=0.5,O_S=0.5,V_Mo=0.5"
    assert strict.metadata["atomdefect"]["operating_point"] == "V_S=0.5,V_S2=0.5,O_S=0.95,V_Mo=0.5"
    n_os = [int((layer.features["class"].astype(str) == "O_S").sum())
            for layer in (neutral, strict)]
    assert n_os[0] > 0 and n_os[1] < n_os[0]
    assert len(strict.data) <= len(neutral.data)

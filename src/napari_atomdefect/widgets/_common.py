"""Small helpers shared by the dock widgets."""

from __future__ import annotations

from collections.abc import Callable


def refresh_layer_combo(combo, layers, accept: Callable) -> None:
    """Fill ``combo`` with the names of the accepted layers, keeping the current choice if it
    is still there (else the last layer), without emitting change signals while filling."""
    current = combo.currentText()
    combo.blockSignals(True)
    combo.clear()
    for layer in layers:
        if accept(layer):
            combo.addItem(layer.name)
    k = combo.findText(current)
    combo.setCurrentIndex(k if k >= 0 else combo.count() - 1)
    combo.blockSignals(False)


def layer_by_name(viewer, combo):
    """The layer named by ``combo``'s current text, or ``None``."""
    name = combo.currentText()
    return viewer.layers[name] if name in viewer.layers else None


def follow_layers(viewer, combo, accept: Callable, on_change: Callable) -> Callable:
    """Keep ``combo`` listing the accepted layers of ``viewer`` and call ``on_change`` whenever its
    choice may have changed (a new choice, a layer added or removed). Returns the refresh function."""

    def refresh(event=None) -> None:
        refresh_layer_combo(combo, viewer.layers, accept)
        on_change()

    combo.currentIndexChanged.connect(on_change)
    viewer.layers.events.inserted.connect(refresh)
    viewer.layers.events.removed.connect(refresh)
    refresh()
    return refresh

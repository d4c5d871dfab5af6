"""Helpers shared by the viewer tests."""

from __future__ import annotations


def layers_of(viewer, kind: str) -> list:
    """The viewer's layers that this plugin made of ``kind`` (``metadata["atomdefect"]["kind"]``)."""
    return [layer for layer in viewer.layers
            if layer.metadata.get("atomdefect", {}).get("kind") == kind]


def wait_idle(qtbot, widget, timeout: int = 300_000) -> None:
    """Wait until the widget's job has finished and its result was handled.

    (Waiting on ``worker.finished`` itself would race: a worker that finishes before the wait
    connects to the signal is never seen.)"""
    qtbot.waitUntil(lambda: widget.worker is None and not getattr(widget, "_pending_detect", False),
                    timeout=timeout)

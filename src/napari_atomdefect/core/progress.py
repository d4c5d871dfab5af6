"""Driving the core's progress generators (they yield progress dicts, then one ``done`` item)."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable


def relay(items: Iterable[dict]) -> Generator[dict, None, dict | None]:
    """Yield the progress items of ``items`` and return its final ``done`` item.

    Use as ``result = yield from relay(gen)`` inside another progress generator (or a napari
    ``thread_worker``, whose return value is then the result).
    """
    result = None
    for item in items:
        if item.get("done"):
            result = item
        else:
            yield item
    return result


def run_to_end(items: Iterable[dict],
               on_progress: Callable[[dict], None] | None = None) -> dict | None:
    """Consume ``items``, passing progress to ``on_progress``; return the final ``done`` item."""
    result = None
    for item in items:
        if item.get("done"):
            result = item
        elif on_progress is not None:
            on_progress(item)
    return result

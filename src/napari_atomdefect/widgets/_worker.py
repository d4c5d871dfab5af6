"""Shared plumbing of the dock widgets: background jobs, model-list refreshes, lattice cache.

* :func:`start_job` runs a core progress generator in a napari worker and guarantees that the
  widget hears the end of it — returned, errored (as one sentence), cancelled — and is never left
  "running". superqt takes a ``RuntimeError`` raised by the job (a CUDA out-of-memory error, a
  torch error) for a deleted worker, swallows it and never emits ``finished``; here every error
  of the job is carried past it.
* :func:`follow_models` refreshes a widget's model lists on the GUI thread, whichever thread
  wrote the model (fine-tuning saves from its worker thread).
* :class:`LatticeCache` keeps lattices per image layer (held weakly), frame, material and pixel
  size, and forgets a layer's lattices when the layer is removed or its data change.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Generator, Iterator

from qtpy.QtCore import QObject, Signal, Slot

from ..core.errors import AtomDefectError
from ._common import real_layer


class JobFailed(Exception):
    """A job's error, wrapped so that superqt reports it (it swallows ``RuntimeError``)."""

    def __init__(self, original: BaseException):
        super().__init__(str(original))
        self.original = original


def _guarded(gen: Iterator, alive: Callable[[], bool] = lambda: True) -> Generator:
    """Relay ``gen`` (progress items, then its return value); wrap its errors in JobFailed.

    Once ``alive()`` is false (the widget that started the job, or the worker's signals, were
    deleted: the viewer closed while the job ran), an error is raised as a ``RuntimeError``:
    superqt then ends the worker quietly — the wrapper had made it emit ``errored`` on deleted
    signals, which aborted the process (a closed viewer's job that failed as Python shut down).
    """
    try:
        return (yield from gen)
    except Exception as exc:
        if not alive():
            raise RuntimeError(f"the job's widget was closed ({exc})") from exc
        raise JobFailed(exc) from exc


def error_sentence(exc: BaseException) -> str:
    """One sentence for the user about a job's error (no traceback)."""
    if isinstance(exc, JobFailed):
        exc = exc.original
    if isinstance(exc, AtomDefectError):
        return str(exc)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "out of memory" in text.lower():
        return ("The device ran out of memory; choose the CPU device, close other programs, or "
                f"use a smaller image ({type(exc).__name__}: {text}).")
    return f"Unexpected error: {type(exc).__name__}: {text}"


class JobHandle:
    """A running job: its napari worker and whether it has ended (see :func:`start_job`)."""

    def __init__(self, worker, gen: Iterator):
        self.worker = worker
        self._gen = gen
        self.ended = False

    def cancel(self) -> None:
        """Ask the job to stop at its next progress item (no result is delivered)."""
        self.worker.quit()

    def close(self) -> None:
        """Close the (suspended) job generator once its worker is done with it."""
        close = getattr(self._gen, "close", None)
        if close is not None:
            try:
                close()
            except Exception:  # noqa: S110 - a job's own clean-up must not break the widget
                pass


def start_job(job: Callable[..., Iterator], args: tuple, *,
              on_progress: Callable[[dict], None], on_done: Callable[[object], None],
              on_error: Callable[[BaseException], None], on_aborted: Callable[[], None],
              on_finished: Callable[[], None], owner: QObject | None = None) -> JobHandle:
    """Run generator function ``job(*args)`` in a napari worker; all callbacks run on the GUI
    thread, and none once ``owner`` is deleted.

    Parameters
    ----------
    job, args
        A generator function yielding progress dicts and returning the result, and its
        arguments.
    on_progress, on_done, on_error, on_aborted
        Called with each progress item, with the result, with the job's exception (the
        original one, not the wrapper), and after a Cancel. Exactly one of ``on_done``,
        ``on_error`` and ``on_aborted`` is called; an exception raised by ``on_done`` is passed
        to ``on_error``.
    on_finished
        Called last, always (while ``owner`` lives): the widget clears its running state here.
    owner : QObject, optional
        The widget the callbacks update. When it is deleted (the viewer closed while the job
        ran) the job is asked to stop and no callback runs: they had updated deleted widgets
        ("wrapped C/C++ object … has been deleted") and the process aborted.

    Returns
    -------
    JobHandle
    """
    from napari.qt.threading import create_worker
    from qtpy import sip

    handle: JobHandle | None = None

    def alive() -> bool:
        signals = getattr(handle.worker, "_signals", None) if handle is not None else None
        return not ((owner is not None and sip.isdeleted(owner))
                    or (signals is not None and sip.isdeleted(signals)))

    gen = job(*args)
    worker = create_worker(_guarded, gen, alive, _ignore_errors=True)
    handle = JobHandle(worker, gen)
    outcome: list[str] = []

    def progress(item) -> None:
        if alive():
            on_progress(item)

    def done(result) -> None:
        outcome.append("returned")
        if not alive():
            return
        try:
            on_done(result)
        except Exception as exc:  # a failing result handler must not leave the widget stuck
            on_error(exc)

    def errored(exc) -> None:
        outcome.append("errored")
        if alive():
            on_error(exc.original if isinstance(exc, JobFailed) else exc)

    def aborted() -> None:
        outcome.append("aborted")
        if alive():
            on_aborted()

    def stop(*_args) -> None:
        worker.quit()

    def finished() -> None:
        handle.ended = True
        if owner is not None and not sip.isdeleted(owner):
            owner.destroyed.disconnect(stop)  # (the ended job is not kept alive by the widget)
        try:
            if alive():
                try:
                    if not outcome:  # cancelled after its last step: no 'aborted' signal
                        on_aborted()
                finally:
                    on_finished()
        finally:
            handle.close()

    if owner is not None:  # (the viewer closed: the job stops at its next progress item)
        owner.destroyed.connect(stop)
    worker.yielded.connect(progress)
    worker.returned.connect(done)
    worker.errored.connect(errored)
    worker.aborted.connect(aborted)
    worker.finished.connect(finished)
    worker.start()
    return handle


class _ModelsChangedRelay(QObject):
    """Lives in the GUI thread: a ``changed`` emitted from any thread runs the callback here."""

    changed = Signal()

    def __init__(self, callback: Callable[[], None], parent: QObject):
        super().__init__(parent)
        self._callback = callback
        # Auto connection: direct from the GUI thread, queued from a worker thread.
        self.changed.connect(self._relay)

    @Slot()
    def _relay(self) -> None:
        self._callback()


def follow_models(widget: QObject, callback: Callable[[], None]) -> _ModelsChangedRelay:
    """Run ``callback`` on the GUI thread whenever the set of models changes (a model written,
    renamed, deleted or imported — from any thread). The link ends with ``widget``."""
    from qtpy import sip

    from ..core.models.registry import forget_models_listener, on_models_changed

    relay = _ModelsChangedRelay(callback, widget)

    def emit() -> None:
        # Emitting on a deleted Qt object crashes the process instead of raising: check first.
        if sip.isdeleted(relay):
            forget_models_listener(emit)
        else:
            relay.changed.emit()

    on_models_changed(emit)
    return relay


class LatticeCache:
    """Lattices (the Detect widget: the list of a field's grains) per image layer, frame, material
    and pixel size.

    Layers are held weakly (a layer's id may be reused after it is deleted); a layer's entries
    are dropped when it is removed from the viewer or its data change.
    """

    def __init__(self, viewer):
        self._entries: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._watched: weakref.WeakSet = weakref.WeakSet()
        viewer.layers.events.removed.connect(self._on_removed)

    @staticmethod
    def _split(key: tuple) -> tuple[object, tuple]:
        # (the layer itself: a dock widget's layers are napari proxies, a new one each time)
        return real_layer(key[0]), tuple(key[1:])

    def __setitem__(self, key: tuple, lattice) -> None:
        layer, rest = self._split(key)
        self._entries.setdefault(layer, {})[rest] = lattice
        if layer not in self._watched:
            self._watched.add(layer)
            ref = weakref.ref(layer)
            layer.events.data.connect(lambda event=None: self.drop(ref()))

    def get(self, key: tuple, default=None):
        """The lattice stored for ``key = (layer, frame, material, pixel size)``."""
        layer, rest = self._split(key)
        return self._entries.get(layer, {}).get(rest, default)

    def __contains__(self, key: tuple) -> bool:
        return self.get(key) is not None

    def __len__(self) -> int:
        return sum(len(v) for v in self._entries.values())

    def drop(self, layer) -> None:
        """Forget every lattice of ``layer``."""
        if layer is not None:
            self._entries.pop(real_layer(layer), None)

    def _on_removed(self, event) -> None:
        self.drop(getattr(event, "value", None))


__all__ = ["JobFailed", "JobHandle", "LatticeCache", "error_sentence", "follow_models",
           "start_job"]

"""Compute device selection: ``auto`` picks CUDA, then Apple MPS, then the CPU."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported lazily, inside the functions
    import torch

from .errors import DeviceError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def _check_name(name: str) -> str:
    """Normalised device name; unknown names raise :class:`DeviceError` (no torch needed)."""
    name = str(name or "auto").strip().lower()
    if name in DEVICE_CHOICES:
        return name
    if name.startswith("cuda:") and name[5:].isdigit():
        return name
    raise DeviceError(f"Unknown device {name!r}; choose one of {', '.join(DEVICE_CHOICES)} "
                      "(or cuda:N).")


def select_device(name: str = "auto") -> tuple[torch.device, str]:
    """Return ``(torch.device, description)`` for ``name`` (``auto``, ``cpu``, ``cuda``, ``mps``).

    Parameters
    ----------
    name : str
        ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.

    Returns
    -------
    tuple
        The ``torch.device`` and a description for messages.

    Raises
    ------
    DeviceError
        If the requested device is unknown or not available on this machine.
    """
    import torch

    name = _check_name(name)
    mps = getattr(torch.backends, "mps", None)
    has_mps = mps is not None and mps.is_available()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError("CUDA was requested but no CUDA GPU is available on this machine; "
                              "use 'cpu' or 'auto'.")
        index = int(name[5:]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise DeviceError(f"There is no GPU {name} (this machine has "
                              f"{torch.cuda.device_count()}); use 'cuda' or 'auto'.")
        dev = torch.device(name)
        return dev, f"{name} ({torch.cuda.get_device_name(dev)})"
    if name == "mps":
        if not has_mps:
            raise DeviceError("Apple MPS was requested but is not available on this machine; "
                              "use 'cpu' or 'auto'.")
        return torch.device("mps"), "mps (Apple GPU)"
    n = torch.get_num_threads()
    return torch.device("cpu"), f"cpu ({n} thread{'s' if n != 1 else ''})"

"""Compute device selection: ``auto`` picks CUDA, then Apple MPS, then the CPU."""

from __future__ import annotations

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def select_device(name: str = "auto"):
    """Return ``(torch.device, description)`` for ``name`` (``auto``, ``cpu``, ``cuda``, ``mps``).

    Raises
    ------
    ValueError
        If the requested device is unknown or not available on this machine.
    """
    import torch

    name = (name or "auto").lower()
    if name not in DEVICE_CHOICES and not name.startswith("cuda:"):
        raise ValueError(f"Unknown device {name!r}; choose one of {', '.join(DEVICE_CHOICES)}.")
    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            name = "mps"
        else:
            name = "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError("CUDA was requested but no CUDA GPU is available; use 'cpu' or 'auto'.")
        dev = torch.device(name)
        return dev, f"{name} ({torch.cuda.get_device_name(dev)})"
    if name == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ValueError("Apple MPS was requested but is not available; use 'cpu' or 'auto'.")
        return torch.device("mps"), "mps (Apple GPU)"
    return torch.device("cpu"), f"cpu ({torch.get_num_threads()} threads)"

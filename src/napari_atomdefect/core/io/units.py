"""Length units of image calibrations, to nanometres."""

from __future__ import annotations

from typing import Any

#: Length units to nanometres.
_UNIT_TO_NM = {
    "nm": 1.0, "nanometer": 1.0, "nanometre": 1.0, "nanometers": 1.0,
    "a": 0.1, "å": 0.1, "angstrom": 0.1, "ang": 0.1, "\u212b": 0.1, "angstroms": 0.1,
    "pm": 1e-3, "picometer": 1e-3,
    "um": 1e3, "µm": 1e3, "\u03bcm": 1e3, "micron": 1e3, "microns": 1e3, "micrometer": 1e3,
    "mm": 1e6, "m": 1e9, "meter": 1e9, "cm": 1e7,
}


def unit_to_nm(unit: Any) -> float | None:
    """Factor converting a length ``unit`` to nm, or ``None`` if it is not a length unit."""
    if unit is None:
        return None
    key = str(unit).strip().lower().replace(" ", "")
    if key in ("", "<undefined>", "pixel", "pixels", "px", "t.b.d."):
        return None
    return _UNIT_TO_NM.get(key)


__all__ = ["unit_to_nm"]

"""Exceptions with messages written for microscopists, not programmers."""

from __future__ import annotations


class AtomDefectError(ValueError):
    """Base class: the message is meant to be shown to the user as it is."""


class ImageReadError(AtomDefectError):
    """A file could not be read as a STEM image."""


class BadImageError(AtomDefectError):
    """The image content cannot be analysed (NaN, constant, too small, wrong dimensionality)."""


class NoLatticeError(AtomDefectError):
    """No crystal lattice of the expected kind was found in the image."""


class UnknownMaterialError(AtomDefectError):
    """The material name is not one of the presets."""


class DeviceError(AtomDefectError):
    """The requested compute device is unknown or not available on this machine."""


class OutputError(AtomDefectError, OSError):
    """A result file cannot be written where the user asked (missing or read-only folder, full
    disk, a folder or a device in place of a file). Also an :class:`OSError` for older callers."""


class TableError(AtomDefectError):
    """A defect table (CSV) cannot be read: missing columns, non-numeric coordinates, empty."""

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

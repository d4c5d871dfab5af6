"""The one pixel-size policy shared by the GUI, the CLI and :func:`~..detect.detect.detect`.

* no pixel size given -> the lattice calibrates it;
* a pixel size **from the file** (or an earlier lattice calibration) that disagrees with the lattice
  by more than the tolerance -> replaced by the lattice value, with a message;
* a pixel size **typed by the user** -> kept, with a message when it disagrees (a value that
  gives a lattice constant no material has is refused by
  :func:`~.lattice.find_lattice`, ``IMPLAUSIBLE_LATTICE_FACTOR``).

An S/Se alloy (the host's partner chalcogen among the chosen substituents) may have any lattice
constant between its two end members (Vegard's law): a given value agrees when it lies within the
tolerance of that range. When the lattice calibrates, it uses the host's constant; the detection
re-derives it from the composition found (:mod:`~..detect.alloy_calibration`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..materials.materials import MATERIALS, materials_with_lattice_constant

#: Where a pixel size can come from.
SOURCES = ("none", "file", "lattice", "user")


@dataclass(frozen=True)
class PixelSizeChoice:
    """The pixel size to use and why.

    Attributes
    ----------
    pixel_size_nm : float
        The pixel size in use.
    source : str
        ``"file"``, ``"lattice"`` or ``"user"``: where the value in use comes from.
    lattice_nm : float
        The lattice calibration (for comparison).
    given_nm : float or None
        The value that was given (``None`` if none was).
    disagreement : float or None
        Relative difference between the given value and the lattice (``None`` if none was given).
    message : str or None
        A sentence for the user when the lattice calibrated, replaced or contradicted the value.
    lattice_range_nm : (float, float) or None
        The pixel sizes the lattice allows for an S/Se alloy (host and partner end member), which
        ``disagreement`` is measured against; ``None`` for a single lattice constant.
    """

    pixel_size_nm: float
    source: str
    lattice_nm: float
    given_nm: float | None
    disagreement: float | None
    message: str | None
    lattice_range_nm: tuple[float, float] | None = None


def choose_pixel_size(given_nm: float | None, source: str, lattice_nm: float, material: str,
                      tolerance: float, lattice_constant_nm: float | None = None,
                      alloy_range_nm: tuple[float, float] | None = None) -> PixelSizeChoice:
    """Apply the calibration policy.

    Parameters
    ----------
    given_nm : float or None
        The pixel size given with the image (``None``: unknown).
    source : {"none", "file", "lattice", "user"}
        Where ``given_nm`` comes from. ``"file"`` and ``"lattice"`` values yield to the lattice
        when they disagree by more than ``tolerance``; ``"user"`` values are kept.
    lattice_nm : float
        The pixel size the material's lattice constant implies.
    material : str
        Material name (for the messages).
    tolerance : float
        Largest relative disagreement accepted silently.
    lattice_constant_nm : float, optional
        The material's lattice constant, quoted in the message when the lattice calibrates.
    alloy_range_nm : (float, float), optional
        The pixel sizes the lattice implies for the smallest and the largest lattice constant
        the layer may have (an S/Se alloy: host and partner end member). A given value within
        ``tolerance`` of that range agrees; ``lattice_nm`` (the host's) is still the value used
        when the lattice calibrates or replaces.

    Returns
    -------
    PixelSizeChoice
    """
    if given_nm is None or source == "none":
        alloy = alloy_range_nm is not None and abs(alloy_range_nm[1] - alloy_range_nm[0]) > 0
        return PixelSizeChoice(float(lattice_nm), "lattice", float(lattice_nm), None, None,
                               f"Pixel size calibrated from the {material} lattice"
                               + (f" constant ({lattice_constant_nm:.4f} nm)"
                                  if lattice_constant_nm else "")
                               + f": {lattice_nm:.5f} nm/px"
                               + ("; for an alloy, detection refines it from the "
                                  "composition it finds (Vegard's law)." if alloy else "."))
    lo, hi = sorted(alloy_range_nm) if alloy_range_nm else (lattice_nm, lattice_nm)
    span = (float(lo), float(hi)) if hi > lo else None
    nearest = min(max(given_nm, lo), hi)  # the closest value the layer's lattice allows
    diff = abs(given_nm - nearest) / nearest
    kind = "user" if source == "user" else source
    what_lattice = (f"{material} lattice ({lattice_nm:.5f} nm/px)" if hi == lo else
                    f"{material} alloy lattice ({lo:.5f}–{hi:.5f} nm/px)")
    if diff <= tolerance:
        return PixelSizeChoice(float(given_nm), kind, float(lattice_nm), float(given_nm), diff,
                               None, span)
    if kind == "user":
        msg = (f"The pixel size you gave ({given_nm:.5f} nm/px) disagrees with the "
               f"{what_lattice} by {diff:.1%}; it is kept as given. Check the calibration or "
               f"the material{_other_materials_note(given_nm, lattice_nm, material)}.")
        return PixelSizeChoice(float(given_nm), "user", float(lattice_nm), float(given_nm), diff,
                               msg, span)
    what = "file's" if kind == "file" else "earlier"
    # An alloy: measured from the nearer end of its range, so "at least" (the value in use,
    # refined from the composition, may lie further: the Detect widget's line says by how much).
    by = f"by at least {diff:.1%}" if span else f"by {diff:.1%}"
    refined = " (refined from the composition the detection finds)" if span else ""
    msg = (f"The {what} pixel size ({given_nm:.5f} nm/px) disagrees with the {what_lattice} "
           f"{by}; {REPLACED_NOTE}{refined}. If the "
           f"material is not {material}, choose the right one, or type the pixel size.")
    return PixelSizeChoice(float(lattice_nm), "lattice", float(lattice_nm), float(given_nm), diff,
                           msg, span)


#: Words of the sentence that says the file's (or an earlier) pixel size was replaced by the
#: lattice's: the Detect dock keeps it beside the result (as a toast it was cut short, and the
#: calibration line was scrolled out of view; a trial missed a 9 % change of scale).
REPLACED_NOTE = "using the lattice calibration"


def _other_materials_note(given_nm: float, lattice_nm: float, material: str) -> str:
    """" (at that pixel size the lattice constant is 0.332 nm: MoSe2's or WSe2's)" when the
    lattice constant the given pixel size implies is another material's, else ``""``."""
    mat = MATERIALS.get(material)
    if mat is None or lattice_nm <= 0:
        return ""
    a_nm = mat.a_nm * given_nm / lattice_nm  # the lattice's period in pixels times the given size
    others = [n for n in materials_with_lattice_constant(a_nm) if n != material]
    if not others:
        return ""
    owners = " or ".join(f"{n}'s" for n in others)
    return f" (at that pixel size the lattice constant is {a_nm:.3f} nm: {owners})"


def describe_choice(choice: PixelSizeChoice, given_source: str = "none") -> str:
    """One line for the Detect widget: the pixel size in use, where it came from, and the
    disagreement with the lattice when there is one.

    Parameters
    ----------
    choice : PixelSizeChoice
        The outcome of :func:`choose_pixel_size`.
    given_source : str
        Where the given value came from (``"file"``, ``"lattice"``, ``"user"`` or ``"none"``).

    Returns
    -------
    str
    """
    where = {"file": "from the file", "lattice": "calibrated from the lattice",
             "user": "typed by you"}.get(choice.source, choice.source)
    text = f"In use: {choice.pixel_size_nm:.5f} nm/px ({where})"
    # (within the tolerance there is no disagreement to tell: the value given is in use)
    if choice.given_nm is not None and choice.disagreement and choice.message is not None:
        said = {"file": "the file says", "user": "you typed", "lattice": "the earlier calibration"
                " was"}.get(given_source, "given")
        if choice.source == "lattice":
            text += f"; {said} {choice.given_nm:.5f} nm/px ({choice.disagreement:.1%} off)"
        elif choice.lattice_range_nm is not None:  # an alloy: the range it was measured against
            lo, hi = choice.lattice_range_nm
            text += (f"; the alloy lattice allows {lo:.5f}–{hi:.5f} nm/px "
                     f"({choice.disagreement:.1%} outside)")
        else:
            text += (f"; the lattice says {choice.lattice_nm:.5f} nm/px "
                     f"({choice.disagreement:.1%} off)")
    return text + "."


__all__ = ["PixelSizeChoice", "REPLACED_NOTE", "SOURCES", "choose_pixel_size", "describe_choice"]

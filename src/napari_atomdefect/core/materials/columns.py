"""Column-composition classes, generic over host materials and substituents.

A chalcogen column of a 2H-TMD monolayer seen along [001] holds two atoms of the host chalcogen
X, one above the other; a metal column holds one metal atom M. A defect class says what a column
holds instead:

========  ==========================  ======================  =========================
kind      column holds                name (host X, subst. D)  MoS2 with O / Se
========  ==========================  ======================  =========================
``V_X``   one X, one missing          ``V_<X>``               ``V_S``
``V_X2``  nothing                     ``V_<X>2``              ``V_S2``
``D_X``   one X, one D                ``<D>_<X>``             ``O_S``, ``Se_S``
``D2_X2`` two D                       ``<D>2_<X>2``           ``Se2_S2``
``V_M``   metal column empty          ``V_<M>``               ``V_Mo``
``D_M``   the other metal (Mo/W)      ``<D>_<M>``             ``W_Mo``
``M_X2``  one host metal atom         ``<M>_<X>2``            ``Mo_S2``
========  ==========================  ======================  =========================

Which substituents a host supports, which are on by default, and for which a doubly substituted
column is a class of its own, is decided here once for the whole package (simulator, labels,
detector heads, CSV, layers, widgets all read it from here).

The other metal of a Mo/W alloy (W in a Mo host, Mo in a W host: :data:`METAL_SUBSTITUENTS`) is
a substituent the user may choose too, but not a detector class: a W column is 2.4–3 Mo columns
bright, and the metal columns' own two rungs tell it (:mod:`..lattice.metal_rungs`). So
:func:`parse_substituents` returns the chalcogen substituents only (what models, the simulator,
the ladder and the rungs know) and :func:`metal_substituents` the metal one; ``D_M`` classes are
never model channels (:func:`column_classes` leaves them out; :func:`metal_substituent_classes`).

A **metal antisite** (``M_X2``: an atom of the host's own metal in a chalcogen column, ``Mo_S2``)
is chosen by naming the host metal (``"Mo"`` in MoS2). It is not a detector class either: one
metal atom reads as a metal column, far above the host chalcogen column where the metal outshines
it (2.3–8× in sulfides), and the chalcogen columns' levels tell it
(:mod:`..detect.antisites`); but an unchosen heavier substituent (``Se_S``) reads as bright, so
only the user can say which of the two the image holds. :func:`antisite_chosen` reads the choice.
A chalcogen pair at a metal site (``S2_Mo``) is no class: it reads as a faint metal column.

Not separate classes, with the reason (HAADF weights of one atom, relative to one host chalcogen,
from :mod:`.physics`):

* **mixed column (one D, one missing)** — for a heavier substituent (Se in S: ~3.4×, Te in Se:
  ~1.9×) it carries 0.9–1.7 host atoms' worth of signal, inside the spread of pristine and
  ``D_X`` columns; for a light one (S in Se: ~0.3×, O in S: ~0.27×) it is
  within the spread of ``V_X2``. One projection cannot tell it apart, so it is not a class: it
  is called whichever class it looks like.
* **``O2_X2``** — two O atoms in one column carry ≤ 0.6 host atoms' signal, between ``V_X2`` and
  ``V_X``; they are rare (O replaces a chalcogen next to a vacancy) and a class for them would
  only take calls from ``V_X2``.
* **O in selenides** — an O atom adds ~0.05–0.15 of a Se atom's signal: ``O_Se`` is a ``V_Se``
  in HAADF and is reported as one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import AtomDefectError
from .materials import ATOMIC_NUMBER, MATERIALS, Material, get_material

#: Substituents each host chalcogen supports, in the order their classes appear.
SUPPORTED_SUBSTITUENTS: dict[str, tuple[str, ...]] = {"S": ("O", "Se"), "Se": ("S", "Te")}
#: Substituents considered when the user names none (documented in docs/materials.md).
DEFAULT_SUBSTITUENTS: dict[str, tuple[str, ...]] = {"S": ("O",), "Se": ("S",)}
#: Substituents for which a column with both atoms replaced (``D2_X2``) is a class of its own.
DOUBLE_SUBSTITUTION: frozenset[str] = frozenset({"Se", "S", "Te"})
#: The substituent heavier than each host chalcogen that the package models.
HEAVIER_SUBSTITUENT: dict[str, str] = {"S": "Se", "Se": "Te"}
#: Metal substituents each host metal supports (the other metal of a Mo/W alloy).
METAL_SUBSTITUENTS: dict[str, tuple[str, ...]] = {"Mo": ("W",), "W": ("Mo",)}

#: Defect classes of models whose card lists none (the MoS2 models before column classes).
LEGACY_CLASSES: tuple[str, ...] = ("V_S", "V_S2", "O_S", "V_Mo")
#: Per-pixel classes before the defect classes in label maps and U-Net outputs.
PRISTINE_SEGMENTS: tuple[str, ...] = ("background", "metal", "chalcogen")


class SubstituentError(AtomDefectError):
    """A substituent the material (or the chosen model) does not support."""


@dataclass(frozen=True)
class ColumnClass:
    """One defect class of a column.

    Attributes
    ----------
    name : str
        Name used in CSVs, layers and widgets (``"V_S"``, ``"Se2_S2"``, ``"V_W"``).
    kind : str
        Generic kind: ``"V_X"``, ``"V_X2"``, ``"D_X"``, ``"D2_X2"``, ``"V_M"``, ``"D_M"`` or
        ``"M_X2"`` (a metal antisite).
    site : str
        ``"chalcogen"`` or ``"metal"``.
    atoms : tuple of (str or None)
        What the column holds, top to bottom; ``None`` is a missing atom. Chalcogen columns hold
        two entries, metal columns one.
    substituent : str or None
        The substituent element of ``D_X`` / ``D2_X2`` / ``D_M`` classes (the host metal of an
        ``M_X2`` antisite).
    """

    name: str
    kind: str
    site: str
    atoms: tuple[str | None, ...]
    substituent: str | None = None


def supported_substituents(material: str | Material) -> tuple[str, ...]:
    """Substituents that can replace the host chalcogen of ``material``."""
    return SUPPORTED_SUBSTITUENTS[get_material(material).chalcogen]


def default_substituents(material: str | Material) -> tuple[str, ...]:
    """Substituents considered when the user names none."""
    return DEFAULT_SUBSTITUENTS[get_material(material).chalcogen]


def _items(value: str | Iterable[str]) -> list[str]:
    items = value.replace(";", ",").split(",") if isinstance(value, str) else list(value)
    return [str(item).strip() for item in items]


def metal_substituents(value: str | Iterable[str] | None,
                       material: str | Material) -> tuple[str, ...]:
    """The metal substituents (:data:`METAL_SUBSTITUENTS`) among the user's ``value``.

    ``None`` (the material's defaults) holds none: a Mo/W alloy is chosen by naming the metal.
    """
    if value is None:
        return ()
    mat = get_material(material)
    metals = METAL_SUBSTITUENTS.get(mat.metal, ())
    wanted = {s.lower() for s in _items(value)}
    return tuple(m for m in metals if m.lower() in wanted)


def antisite_chosen(value: str | Iterable[str] | None, material: str | Material) -> bool:
    """Whether the user's ``value`` names the host's own metal (``"Mo"`` in MoS2): look for metal
    antisites (:func:`antisite_class`). ``None`` (the material's defaults) does not."""
    if value is None:
        return False
    metal = get_material(material).metal.lower()
    return any(s.lower() == metal for s in _items(value))


def antisite_class(material: str | Material) -> ColumnClass:
    """The metal antisite of ``material``: one host metal atom in a chalcogen column
    (``Mo_S2``); never a model channel (see the module docstring)."""
    mat = get_material(material)
    return ColumnClass(f"{mat.metal}_{mat.chalcogen}2", "M_X2", "chalcogen", (None, mat.metal),
                       mat.metal)


def _choices_text(mat: Material) -> str:
    """What may be chosen for ``mat``, said in a refusal."""
    return (f"choose from {', '.join(supported_substituents(mat) + METAL_SUBSTITUENTS.get(mat.metal, ()))}"
            f", or {mat.metal} for its antisites")


def rule_substituents(material: str | Material) -> tuple[str, ...]:
    """Substituents whose columns the levels tell, not the detector: the other metal of a Mo/W
    alloy, then the host metal (its antisites)."""
    mat = get_material(material)
    return METAL_SUBSTITUENTS.get(mat.metal, ()) + (mat.metal,)


def parse_substituents(value: str | Iterable[str] | None, material: str | Material,
                       available: Iterable[str] | None = None) -> tuple[str, ...]:
    """Turn user input (``"Se,O"``, ``["Se"]``, ``""``, ``None``) into substituents, checked.

    The other metal of a Mo/W alloy (``"W"`` for a Mo host) and the host metal (antisites) are
    accepted and left out of the result (:func:`metal_substituents`, :func:`antisite_chosen`
    read them).

    Parameters
    ----------
    value : str, iterable of str or None
        ``None`` gives the material's defaults (those the model knows); ``""`` or ``"none"``
        gives none (vacancies only).
    material : str or Material
        Host material.
    available : iterable of str, optional
        Substituents the chosen model was trained for; defaults to all the material supports.

    Returns
    -------
    tuple of str
        Substituents in the material's canonical order.

    Raises
    ------
    SubstituentError
        For an element the material or the model does not support.
    """
    mat = get_material(material)
    supported = supported_substituents(mat)
    known = tuple(available) if available is not None else supported
    if value is None:
        return tuple(d for d in default_substituents(mat) if d in known)
    metals = rule_substituents(mat)
    wanted = []
    for s in _items(value):
        if not s or s.lower() == "none" or s.lower() in {m.lower() for m in metals}:
            continue
        match = [d for d in supported if d.lower() == s.lower()]
        if not match:
            raise SubstituentError(
                f"{s!r} is not a substituent this package models in {mat.name} "
                f"({_choices_text(mat)}).")
        if match[0] not in known:
            raise SubstituentError(
                f"The chosen model was not trained for {match[0]} in {mat.name} "
                f"(it knows {', '.join(known) or 'vacancies only'}); choose a model trained "
                f"with {match[0]} or leave it out.")
        wanted.append(match[0])
    return tuple(d for d in supported if d in wanted)


def _chalcogen_classes(x: str, subs: Iterable[str]) -> list[ColumnClass]:
    out = [ColumnClass(f"V_{x}", "V_X", "chalcogen", (x, None)),
           ColumnClass(f"V_{x}2", "V_X2", "chalcogen", (None, None))]
    for d in subs:
        out.append(ColumnClass(f"{d}_{x}", "D_X", "chalcogen", (x, d), d))
        if d in DOUBLE_SUBSTITUTION:
            out.append(ColumnClass(f"{d}2_{x}2", "D2_X2", "chalcogen", (d, d), d))
    return out


def median_classes(material: Material, substituents: tuple[str, ...]) -> tuple[str, ...]:
    """Classes the median chalcogen column may be: the host column; one substituent beside a
    host atom, for each alloying substituent; two, for the other of S and Se only (an S/Se layer
    converted past half; a selenide whose median column holds two Te is a telluride, which no
    model covers)."""
    x = material.chalcogen
    partner = "Se" if x == "S" else "S"
    alloying = [d for d in substituents if d in DOUBLE_SUBSTITUTION]
    return ("chalcogen",) + tuple(f"{d}_{x}" for d in alloying) + tuple(
        f"{d}2_{x}2" for d in alloying if d == partner)


def column_classes(material: str | Material,
                   substituents: Iterable[str] | None = None) -> tuple[ColumnClass, ...]:
    """Defect classes of ``material`` with ``substituents``, in model channel order.

    Order: ``V_X``, ``V_X2``, then per substituent ``D_X`` (and ``D2_X2``), then ``V_M``.
    ``substituents=None`` gives every supported substituent (the classes a model is trained for).
    A metal substituent named in ``substituents`` (``"W"`` for a Mo host) adds its ``D_M``
    class at the end, the host metal (``"Mo"``) the antisite ``M_X2`` after it (never model
    channels: ``None`` leaves them out).
    """
    mat = get_material(material)
    metals = rule_substituents(mat)
    subs = (supported_substituents(mat) if substituents is None
            else tuple(d for d in substituents if d not in metals))
    for d in subs:
        if d not in supported_substituents(mat):
            raise SubstituentError(f"{d!r} is not a substituent this package models in "
                                   f"{mat.name} ({_choices_text(mat)}).")
    ordered = [d for d in supported_substituents(mat) if d in subs]
    extra = () if substituents is None else metal_substituent_classes(
        mat, [d for d in substituents if d in metals]) + (
        (antisite_class(mat),) if mat.metal in tuple(substituents) else ())
    return tuple(_chalcogen_classes(mat.chalcogen, ordered)
                 + [ColumnClass(f"V_{mat.metal}", "V_M", "metal", (None,))]) + extra


def metal_substituent_classes(material: str | Material,
                              metals: Iterable[str] | None = None) -> tuple[ColumnClass, ...]:
    """The ``D_M`` classes of ``material`` (``W_Mo``) for the metal substituents ``metals``
    (``None``: every one it supports). Never model channels: see the module docstring."""
    mat = get_material(material)
    supported = METAL_SUBSTITUENTS.get(mat.metal, ())
    chosen = supported if metals is None else tuple(m for m in supported if m in tuple(metals))
    return tuple(ColumnClass(f"{m}_{mat.metal}", "D_M", "metal", (m,), m) for m in chosen)


def class_names(material: str | Material,
                substituents: Iterable[str] | None = None) -> tuple[str, ...]:
    """Names of :func:`column_classes`."""
    return tuple(c.name for c in column_classes(material, substituents))


def segment_classes(defect_names: Iterable[str]) -> tuple[str, ...]:
    """Per-pixel classes of label maps and U-Net channels for a model's defect classes."""
    return PRISTINE_SEGMENTS + tuple(defect_names)


def _all_classes() -> dict[str, ColumnClass]:
    out: dict[str, ColumnClass] = {}
    for mat in MATERIALS.values():
        for c in column_classes(mat) + metal_substituent_classes(mat) + (antisite_class(mat),):
            out.setdefault(c.name, c)
    return out


#: Every class name any material can produce, with its class (for reading CSVs and styling).
KNOWN_CLASSES: dict[str, ColumnClass] = _all_classes()
#: Every known class name, sorted by material order then channel order.
ALL_CLASS_NAMES: tuple[str, ...] = tuple(KNOWN_CLASSES)


def lookup_class(name: str) -> ColumnClass | None:
    """The :class:`ColumnClass` called ``name`` in any material, or ``None``."""
    return KNOWN_CLASSES.get(str(name))


def lighter_than_host(column: ColumnClass | None, host: str | None) -> bool:
    """Whether ``column`` holds a substituent lighter than the host chalcogen ``host`` (``O_S``
    and ``S2_Se2`` do, ``Se_S`` does not; a class without a substituent does not)."""
    return (column is not None and column.substituent is not None and host is not None
            and ATOMIC_NUMBER[column.substituent] < ATOMIC_NUMBER[host])


def substituents_of(classes: Iterable[str]) -> tuple[str, ...]:
    """Substituents of the ``D_X`` / ``D2_X2`` classes among ``classes`` (first-seen order)."""
    out: list[str] = []
    for name in classes:
        c = lookup_class(name)
        if c is not None and c.substituent and c.substituent not in out:
            out.append(c.substituent)
    return tuple(out)


def class_site(name: str) -> str | None:
    """``"chalcogen"``, ``"metal"`` or ``None`` (unknown name) for a class name."""
    c = lookup_class(name)
    return c.site if c else None


def materials_of_classes(names: Iterable[str]) -> list[Material]:
    """Every host material whose classes include all ``names`` (in :data:`MATERIALS` order)."""
    names = set(map(str, names))
    return [m for m in MATERIALS.values()
            if names <= set(class_names(m)) | {c.name for c in metal_substituent_classes(m)}
            | {antisite_class(m).name}]


def lattice_constant_of_classes(names: Iterable[str]) -> float | None:
    """The host lattice constant (nm) that defect classes ``names`` imply: the mean of every host
    whose classes include them all, when those agree within 2 % (the sulfides 0.315-0.316 nm, the
    selenides 0.328-0.329 nm); ``None`` when no host has them all or the hosts disagree."""
    hits = [m.a_nm for m in materials_of_classes(names)]
    if not hits or (max(hits) - min(hits)) > 0.02 * min(hits):
        return None
    return float(sum(hits) / len(hits))


def material_of_classes(names: Iterable[str]) -> Material | None:
    """The one host material whose classes include all ``names``, if exactly one does."""
    hits = materials_of_classes(names)
    return hits[0] if len(hits) == 1 else None


def site_choices(defect_names: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Classes a metal site and a chalcogen site can take, pristine first.

    Returns ``(("metal", "V_Mo"), ("chalcogen", "V_S", ...))`` for a model's defect classes.
    """
    names = tuple(defect_names)
    metal = ("metal",) + tuple(n for n in names if class_site(n) == "metal")
    chalcogen = ("chalcogen",) + tuple(n for n in names if class_site(n) == "chalcogen")
    return metal, chalcogen


def site_channels(defect_names: Iterable[str]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Indices into :func:`segment_classes` of :func:`site_choices` (metal, chalcogen)."""
    names = tuple(defect_names)
    seg = segment_classes(names)
    metal, chalcogen = site_choices(names)
    return tuple(seg.index(c) for c in metal), tuple(seg.index(c) for c in chalcogen)

"""Material presets for 2H transition-metal dichalcogenide (TMD) monolayers.

A 2H-TMD monolayer seen along [001] is a honeycomb of metal columns (one atom) and chalcogen
columns (two atoms, one above the other). The lattice constant ``a`` is the metal–metal distance.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UnknownMaterialError

ATOMIC_NUMBER: dict[str, int] = {"O": 8, "S": 16, "Se": 34, "Mo": 42, "Te": 52, "W": 74}
#: The other metal of a Mo/W alloy (Mo₁₋ₓWₓS₂, ...).
METAL_PARTNER: dict[str, str] = {"Mo": "W", "W": "Mo"}


@dataclass(frozen=True)
class Material:
    """A 2H-TMD monolayer preset.

    Attributes
    ----------
    name : str
        Chemical formula, e.g. ``"MoS2"``.
    a_nm : float
        In-plane lattice constant (metal–metal distance) in nm.
    metal, chalcogen, light_substituent : str
        Element symbols. ``light_substituent`` is the supported substituent lighter than the
        chalcogen (O in sulfides, S in selenides), whose signal beside a host atom has its own
        randomised ratio (``light_ratio``, see :mod:`.physics`).
    """

    name: str
    a_nm: float
    metal: str
    chalcogen: str
    light_substituent: str = "O"

    @property
    def z_metal(self) -> int:
        """Atomic number of the metal."""
        return ATOMIC_NUMBER[self.metal]

    @property
    def z_chalcogen(self) -> int:
        """Atomic number of the chalcogen."""
        return ATOMIC_NUMBER[self.chalcogen]

    @property
    def metal_chalcogen_distance_nm(self) -> float:
        """Projected metal–chalcogen column distance, ``a / sqrt(3)``."""
        return self.a_nm / 3**0.5

    def column_contrast(self, exponent: float = 1.7) -> tuple[float, float]:
        """Expected HAADF weights ``(metal column, chalcogen column)`` under a ``Z**n`` rule."""
        return self.z_metal**exponent, 2 * self.z_chalcogen**exponent


MATERIALS: dict[str, Material] = {
    "MoS2": Material("MoS2", 0.3160, "Mo", "S"),
    "WS2": Material("WS2", 0.3153, "W", "S"),
    "MoSe2": Material("MoSe2", 0.3288, "Mo", "Se", "S"),
    "WSe2": Material("WSe2", 0.3282, "W", "Se", "S"),
}


def get_material(name: str | Material) -> Material:
    """Return the preset called ``name`` (case-insensitive).

    Raises
    ------
    UnknownMaterialError
        If no preset has that name.
    """
    if isinstance(name, Material):
        return name
    for key, mat in MATERIALS.items():
        if key.lower() == str(name).strip().lower():
            return mat
    raise UnknownMaterialError(
        f"Unknown material {name!r}. Known materials: {', '.join(MATERIALS)}."
    )


def partner_material(host: str | Material) -> Material | None:
    """The end member whose chalcogen is ``host``'s S/Se partner (WS2 -> WSe2, MoSe2 -> MoS2):
    the other end of the S/Se alloys of ``host``'s metal (``None`` when there is none)."""
    mat = get_material(host)
    partner = {"S": "Se", "Se": "S"}.get(mat.chalcogen)
    for other in MATERIALS.values():
        if other.metal == mat.metal and other.chalcogen == partner:
            return other
    return None


#: Lattice constants within this relative distance are one material's (the sulfides and the
#: selenides differ by 4 %; a metal's two compounds of one chalcogen by under 0.3 %).
SAME_LATTICE_CONSTANT = 0.02


def materials_with_lattice_constant(a_nm: float,
                                    tolerance: float = SAME_LATTICE_CONSTANT) -> tuple[str, ...]:
    """Names of the materials whose lattice constant lies within ``tolerance`` of ``a_nm``."""
    return tuple(n for n, m in MATERIALS.items() if abs(a_nm / m.a_nm - 1) <= tolerance)


#: In-plane lattice constants (nm) of the 2H tellurides, the Te end of a selenide's Te alloys:
#: 2H-MoTe2 measured (0.3519 nm); 2H-WTe2, not a stable bulk phase (WTe2 grows as Td), as
#: computed (0.3551 nm) — the 2H WSe2-WTe2 alloys follow the line between them up to about half Te.
TELLURIDE_A_NM: dict[str, float] = {"Mo": 0.3519, "W": 0.3551}


def end_member_lattice_constant(host: str | Material, substituent: str) -> float | None:
    """Lattice constant (nm) of the end member an alloy of ``host`` with ``substituent`` tends
    to: the S/Se partner's (WS2 with Se -> WSe2), the telluride's for Te in a selenide; ``None``
    for a substituent that forms no alloy (O)."""
    mat = get_material(host)
    partner = partner_material(mat)
    if partner is not None and substituent == partner.chalcogen:
        return float(partner.a_nm)
    if substituent == "Te" and mat.chalcogen == "Se":
        return TELLURIDE_A_NM.get(mat.metal)
    return None


def lattice_constant_range_nm(host: str | Material,
                              substituents: tuple[str, ...] | list[str] | None = None
                              ) -> tuple[float, float]:
    """Smallest and largest lattice constant a layer of ``host`` may have with ``substituents``:
    the host's own, or — with an alloying substituent among them (the S/Se partner, Te in a
    selenide) — anything between the host and that end member (Vegard's law; WS2 0.3153 nm,
    WSe2 0.3282 nm, 2H-WTe2 0.3551 nm)."""
    mat = get_material(host)
    ends = [end_member_lattice_constant(mat, d) for d in tuple(substituents or ())]
    values = [mat.a_nm] + [a for a in ends if a is not None]
    return min(values), max(values)

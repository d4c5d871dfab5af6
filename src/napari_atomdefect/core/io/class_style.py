"""How each defect class is drawn: one colour and one marker symbol per class, for every material.

Colours follow what the column holds, not the material, so a user sees the same colour for "one
chalcogen missing" in MoS2 and in WSe2: vacancies warm (orange one atom, red two), substituents in
the colour of their element (a diamond for one; a star in a paler tint for two, so that the two
stay apart at full view of a dense alloy), metal vacancies green. One substituent lighter than
the host chalcogen (O in a sulfide, S in a selenide) is a downward triangle, not a diamond: it
is often looked for beside a heavier one (WS2 with Se and O) and colour alone told the two apart.
The other metal of a Mo/W alloy (``W_Mo``, ``Mo_W``) is an ✕ in its element's colour, a metal
antisite (``Mo_S2``: the host metal in a chalcogen column) a cross in its metal's colour.
"""

from __future__ import annotations

from ..materials.columns import lighter_than_host, lookup_class

#: Marker colour of each generic kind without a substituent.
KIND_COLORS = {"V_X": "#ff9900", "V_X2": "#ff2020", "V_M": "#33ff33"}
#: Marker colour of substitutions, by substituent element.
SUBSTITUENT_COLORS = {"O": "#00e5ff", "Se": "#ff4dff", "S": "#ffee33", "Te": "#4d7fff",
                      "W": "#b266ff", "Mo": "#66ffcc"}
#: How far a doubly substituted column's colour is mixed towards white (its single one's tint).
DOUBLE_TINT = 0.55
#: Marker symbol (napari Points symbol) of each generic kind.
KIND_SYMBOLS = {"V_X": "disc", "V_X2": "square", "D_X": "diamond", "D2_X2": "star",
                "V_M": "triangle_up", "D_M": "x", "M_X2": "cross"}
#: Symbol of one substituent lighter than the host chalcogen (``O_S``, ``S_Se``).
LIGHTER_SINGLE_SYMBOL = "triangle_down"
#: Hollow glyphs of the symbols above, for legends drawn as text.
SYMBOL_GLYPHS = {"disc": "○", "square": "□", "diamond": "◇", "star": "☆", "triangle_up": "△",
                 "triangle_down": "▽", "cross": "✕", "x": "×"}
#: ... and as plain words, for a legend printed to a console that may not show the glyphs.
SYMBOL_WORDS = {"disc": "circles", "square": "squares", "diamond": "diamonds", "star": "stars",
                "triangle_up": "triangles", "triangle_down": "downward triangles",
                "cross": "crosses", "x": "x marks"}
#: Colour and symbol of a class name no material knows (kept from a user's CSV).
UNKNOWN_STYLE = ("#bbbbbb", "cross")


def class_color(name: str) -> str:
    """Hex colour of the markers of class ``name``."""
    c = lookup_class(name)
    if c is None:
        return UNKNOWN_STYLE[0]
    if c.substituent is None:
        return KIND_COLORS[c.kind]
    colour = SUBSTITUENT_COLORS.get(c.substituent, UNKNOWN_STYLE[0])
    if c.kind != "D2_X2" or c.substituent not in SUBSTITUENT_COLORS:
        return colour
    return "#" + "".join(f"{round(255 * (v + DOUBLE_TINT * (1 - v))):02x}"
                         for v in hex_rgb(colour))


def class_symbol(name: str) -> str:
    """napari Points symbol of the markers of class ``name``."""
    c = lookup_class(name)
    if c is None:
        return UNKNOWN_STYLE[1]
    # (one substituent beside its host atom: ``atoms`` is the host, then the substituent)
    if c.kind == "D_X" and lighter_than_host(c, c.atoms[0]):
        return LIGHTER_SINGLE_SYMBOL
    return KIND_SYMBOLS[c.kind]


def hex_rgb(colour: str) -> tuple[float, float, float]:
    """A ``#rrggbb`` colour as an RGB tuple in 0–1."""
    h = colour.lstrip("#")
    return tuple(int(h[i:i + 2], 16) / 255 for i in (0, 2, 4))  # type: ignore[return-value]


def class_rgb(name: str) -> tuple[float, float, float]:
    """Colour of class ``name`` as an RGB tuple in 0–1 (for pictures drawn without napari)."""
    return hex_rgb(class_color(name))

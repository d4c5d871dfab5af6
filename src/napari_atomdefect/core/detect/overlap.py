"""Defect classes an image cannot tell apart, read from the calls' own probabilities.

Some pairs of column classes sit on nearly the same rung of the Z-contrast ladder at some
microscopes: at rest and at high detector angles a single S reads 0.55–0.65 of its column and an
O beside it adds little (``V_S`` / ``O_S``), and in a selenide a single Se and an S beside a Se
differ by a few per cent (``V_Se`` / ``S_Se``: 0.54 and 0.55–0.66 of a Se2 column at 100 kV,
80–220 mrad in multislice; docs/physics.md). Where they overlap, how a column is split between
the two depends on how common each is in the sample, which no detector can know from a single
column; the calls of either class are then unreliable, while their sum is not.

:func:`class_overlaps` counts, for every call of a defect class, whether its runner-up defect
class is nearly as probable (the calibrated probabilities of the site table), and reports a
pair when a sizeable share of the calls of either class is so; :func:`overlap_message` says it
in one sentence for the user.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..materials.columns import lookup_class

#: A call is uncertain between its class and the runner-up defect class when the runner-up's
#: calibrated probability is at least this fraction of the called class's.
RUNNER_UP_RATIO = 0.5
#: A pair is reported when at least this share of the calls of one of its classes are uncertain
#: between the two...
MIN_SHARE = 0.4
#: ...and at least this many calls are.
MIN_UNCERTAIN = 8
#: Site-table classes of pristine columns (never one of a pair).
PRISTINE = ("metal", "chalcogen")
#: A substitution class of a pair called at most this many times, and at most this share of
#: the other class's calls, may be a substituent the layer does not hold.
FEW_SUBSTITUTIONS = 5
FEW_SUBSTITUTION_SHARE = 0.1


def one_atom_pair(a: str, b: str) -> tuple[str, str] | None:
    """``(host, substituent)`` when ``a`` and ``b`` are a single vacancy and a single
    substitution of one host chalcogen (``V_S`` / ``O_S``, ``V_Se`` / ``S_Se``): columns that
    hold one host atom either way, the other site empty or the substituent; else ``None``."""
    ca, cb = lookup_class(a), lookup_class(b)
    if ca is None or cb is None or {ca.kind, cb.kind} != {"V_X", "D_X"}:
        return None
    vac, sub = (ca, cb) if ca.kind == "V_X" else (cb, ca)
    host = next((x for x in vac.atoms if x), None)
    if host is None or sub.substituent is None or \
            [x for x in sub.atoms if x != sub.substituent] != [host]:
        return None
    return host, sub.substituent


def sum_sentence(a: str, b: str, n: int) -> str:
    """What is sure of the ``n`` calls of an overlapping pair and what is not, in the words of
    the columns: "their 517 columns each hold one Se atom — that is sure; whether the other
    site holds S or is empty is not" for a single vacancy and a single substitution (a trial:
    "their sum is not [uncertain]" added an alloy atom to a vacancy), else "their split is
    uncertain while their sum (n) is not"."""
    pair = one_atom_pair(a, b)
    if pair is None:
        return f"their split is uncertain while their sum ({n}) is not"
    host, light = pair
    return (f"their {n} columns each hold one {host} atom — that is sure; whether the other "
            f"site holds {light} or is empty is not")


@dataclass(frozen=True)
class ClassOverlap:
    """Two defect classes whose calls in one image are often nearly as probable the other way.

    Attributes
    ----------
    classes : tuple of str
        The two class names (the one with more uncertain calls first).
    uncertain : tuple of int
        Calls of each class whose runner-up is the other class at
        :data:`RUNNER_UP_RATIO` or more of its probability.
    called : tuple of int
        All calls of each class.
    """

    classes: tuple[str, str]
    uncertain: tuple[int, int]
    called: tuple[int, int]

    @property
    def n_union(self) -> int:
        """Calls of either class."""
        return int(sum(self.called))

    def message(self, where: str = "this image", fine_tuned: bool = False) -> str:
        """One sentence for the user (``where``: what the calls were made in; ``fine_tuned``:
        the calls are a fine-tuned model's, whose user is not told to fine-tune as if new)."""
        a, b = self.classes
        parts = [f"{u} of {n} {c}"
                 for c, u, n in zip(self.classes, self.uncertain, self.called, strict=True) if n]
        advice = ("this model is fine-tuned already: correct more of them (both classes) and "
                  "fine-tune it again on those cells" if fine_tuned else
                  "correcting a few of them and fine-tuning on those cells splits them for your "
                  "microscope")
        text = (f"{a} and {b} overlap in {where}: {' and '.join(parts)} calls are nearly as "
                f"likely the other class, so {sum_sentence(a, b, self.n_union)}; {advice}.")
        return text + self._few_substitutions_note()

    def _few_substitutions_note(self) -> str:
        """" With only 2 S_Se calls the layer may hold no S: …" when one class of the pair is a
        substitution called a handful of times beside many calls of the other (a Te layer
        analysed with S and Te chosen: its single vacancies were each nearly an S_Se, and the
        advice to fine-tune was the wrong one)."""
        for c, n, n_other in ((self.classes[0], self.called[0], self.called[1]),
                              (self.classes[1], self.called[1], self.called[0])):
            kind = lookup_class(c)
            if (kind is not None and kind.substituent and n <= FEW_SUBSTITUTIONS
                    and n <= FEW_SUBSTITUTION_SHARE * n_other):
                other = self.classes[1] if c == self.classes[0] else self.classes[0]
                calls = (f"no {c} call" if n == 0
                         else f"only {n} {c} call{'s' if n != 1 else ''}")
                return (f" With {calls} the layer may hold no {kind.substituent}: if so, leave "
                        f"{kind.substituent} out of the substituents and the {other} calls stand "
                        "on their own.")
        return ""


def class_overlaps(sites: pd.DataFrame) -> list[ClassOverlap]:
    """Pairs of defect classes that this image's calls cannot tell apart.

    Parameters
    ----------
    sites : DataFrame
        The site table of a detection: ``class`` and one calibrated ``p_<class>`` column per
        class of the site's sublattice (``nan`` for the other sublattice's).

    Returns
    -------
    list of ClassOverlap
        Most uncertain pair first; empty when every pair is told apart.
    """
    pcols = [c for c in sites.columns if c.startswith("p_") and c != "p_defect"
             and c[2:] not in PRISTINE]
    if sites.empty or len(pcols) < 2:
        return []
    names = np.array([c[2:] for c in pcols], object)
    p = sites[pcols].to_numpy(float)
    p = np.where(np.isfinite(p), p, -1.0)  # the other sublattice's classes never compete
    called = sites["class"].astype(str).to_numpy()
    index = {c: i for i, c in enumerate(names)}
    counts: dict[tuple[str, str], int] = {}
    for k in np.flatnonzero(np.isin(called, names)):
        own = index[called[k]]
        others = p[k].copy()
        others[own] = -1.0
        runner = int(others.argmax())
        if others[runner] > 0 and others[runner] >= RUNNER_UP_RATIO * max(p[k, own], 1e-12):
            key = (called[k], str(names[runner]))
            counts[key] = counts.get(key, 0) + 1
    n_called = pd.Series(called).value_counts().to_dict()
    out, seen = [], set()
    for (a, b), _ in sorted(counts.items(), key=lambda kv: -kv[1]):
        pair = frozenset((a, b))
        if pair in seen:
            continue
        seen.add(pair)
        u = (counts.get((a, b), 0), counts.get((b, a), 0))
        n = (int(n_called.get(a, 0)), int(n_called.get(b, 0)))
        shares = [ui / ni for ui, ni in zip(u, n, strict=True) if ni]
        if sum(u) >= MIN_UNCERTAIN and shares and max(shares) >= MIN_SHARE:
            out.append(ClassOverlap((a, b), u, n))
    return out


def overlap_message(overlaps: list[ClassOverlap], where: str = "this image",
                    fine_tuned: bool = False) -> str | None:
    """:meth:`ClassOverlap.message` of each pair of ``overlaps`` (:func:`class_overlaps`; one
    sentence each, joined), or ``None``."""
    return " ".join(o.message(where, fine_tuned) for o in overlaps) or None


__all__ = ["ClassOverlap", "class_overlaps", "one_atom_pair", "overlap_message", "sum_sentence"]

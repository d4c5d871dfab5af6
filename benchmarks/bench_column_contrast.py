"""Benchmark: HAADF column contrasts of 2H-TMD monolayers from multislice (abTEM) vs. the model.

Issues #13/#14. The package's fast simulator weighs each atom of a column by a single-atom
screened-Rutherford cross-section (``core/materials/physics.py``) and randomises the dynamical
corrections (second atom of a chalcogen column, a light substituent channelled in a heavier
column). This script measures those corrections with a frozen-phonon multislice simulation:

* one orthogonal supercell per material holds, ≥ a·√3 apart, every modified column: the
  chalcogen column with its entrance- or exit-side atom missing (``X/-``, ``-/X``), both missing
  (``-/-``), one substituent on either side (``X/D``, ``D/X``), two substituents (``D/D``), and a
  metal vacancy; host chalcogen and metal columns far from the defects are the references;
* the probe is scanned only where it is needed (a disc of radius ``--radius`` around each column and
  small discs on the three hollow sites next to it), with all detectors read from one run;
* each column's integrated intensity is the disc sum minus the local background (mean of its
  hollow sites) times the disc's point count; ratios are taken to one host chalcogen atom,
  ``X1`` = mean of the ``X/-`` and ``-/X`` columns.

Column notation is ``entrance/exit``: the beam meets the first atom first.

Usage (abTEM in its own venv; the package's model needs only numpy)::

    OMP_NUM_THREADS=1 PYTHONPATH=src /work/abtem-venv/bin/python \
        benchmarks/bench_column_contrast.py --materials MoS2 WSe2 --kv 60 80 \
        --detectors 80-200 60-160 --configs 4 [--json out.json]
    python benchmarks/bench_column_contrast.py --model-only   # the model's numbers, no abTEM

Keep it small on shared CPUs: one material at 1 kV and 4 frozen-phonon configurations takes a
few minutes on one core.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass

import numpy as np

Z = {"O": 8, "S": 16, "Se": 34, "Mo": 42, "Te": 52, "W": 74}


@dataclass(frozen=True)
class Preset:
    """Geometry of one 2H monolayer: lattice constant, chalcogen z-separation, substituents."""

    name: str
    a: float  # Å
    metal: str
    chalcogen: str
    dz: float  # chalcogen-chalcogen separation along the beam (Å)
    dopants: tuple[str, str]  # (light, heavy) substituents of the chalcogen


PRESETS = {
    "MoS2": Preset("MoS2", 3.160, "Mo", "S", 3.17, ("O", "Se")),
    "WS2": Preset("WS2", 3.153, "W", "S", 3.14, ("O", "Se")),
    "MoSe2": Preset("MoSe2", 3.288, "Mo", "Se", 3.30, ("S", "Te")),
    "WSe2": Preset("WSe2", 3.282, "W", "Se", 3.30, ("S", "Te")),
}

#: Room-temperature RMS displacement per direction (Å) for the frozen phonons.
SIGMAS = {"O": 0.08, "S": 0.07, "Se": 0.065, "Te": 0.065, "Mo": 0.05, "W": 0.045}


def column_kinds(p: Preset) -> list[tuple[str, tuple[str | None, str | None]]]:
    """Modified chalcogen columns as ``(label, (entrance atom, exit atom))``; None = vacancy."""
    x = p.chalcogen
    kinds = [("X/-", (x, None)), ("-/X", (None, x)), ("-/-", (None, None))]
    for d in p.dopants:
        kinds += [(f"X/{d}", (x, d)), (f"{d}/X", (d, x)), (f"{d}/{d}", (d, d))]
    return kinds


def lattice_sites(p: Preset, nx: int, ny: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple]:
    """Metal, chalcogen and hollow column positions (Å) of an ``nx × ny`` orthogonal supercell."""
    a, b = p.a, p.a * math.sqrt(3)
    metal0 = [(0.0, 0.0), (a / 2, b / 2)]
    chalc0 = [(a / 2, b / 6), (0.0, 2 * b / 3)]
    hollow0 = [(0.0, b / 3), (a / 2, 5 * b / 6)]
    shifts = [(i * a, j * b) for i in range(nx) for j in range(ny)]

    def tile(base):
        return np.array([(x + sx, y + sy) for sx, sy in shifts for x, y in base])

    return tile(metal0), tile(chalc0), tile(hollow0), (nx * a, ny * b)


def periodic_dist(p1: np.ndarray, p2: np.ndarray, cell: tuple) -> np.ndarray:
    """Distances between points ``p1`` (n, 2) and ``p2`` (m, 2) under periodic boundaries."""
    d = p1[:, None, :] - p2[None, :, :]
    c = np.asarray(cell)
    d -= c * np.round(d / c)
    return np.linalg.norm(d, axis=-1)


def place_defects(metal: np.ndarray, chalc: np.ndarray, cell: tuple, n_chalc: int,
                  dmin: float) -> tuple[list[int], int]:
    """Greedy choice of ``n_chalc`` chalcogen sites and one metal site, all ≥ ``dmin`` apart."""
    chosen: list[np.ndarray] = []
    idx: list[int] = []
    for i, pos in enumerate(chalc):
        if all(periodic_dist(pos[None], c[None], cell)[0, 0] >= dmin for c in chosen):
            chosen.append(pos)
            idx.append(i)
            if len(idx) == n_chalc:
                break
    if len(idx) < n_chalc:
        raise ValueError("supercell too small for all modified columns")
    dm = periodic_dist(metal, np.array(chosen), cell).min(axis=1)
    return idx, int(np.argmax(dm))


def build_cell(p: Preset, nx: int = 7, ny: int = 4, dmin: float | None = None):
    """ASE atoms of the supercell with all modified columns, and the columns to measure.

    Returns ``(atoms, columns)``; ``columns`` maps a label to its (x, y) position. Host references
    are the chalcogen and metal columns farthest from every modified column (``X2#k``, ``M#k``).
    """
    from ase import Atoms

    metal, chalc, _, cell = lattice_sites(p, nx, ny)
    kinds = column_kinds(p)
    dmin = p.a * math.sqrt(3) - 0.05 if dmin is None else dmin
    cidx, midx = place_defects(metal, chalc, cell, len(kinds), dmin)
    z0 = 1.0 + p.dz / 2
    symbols, positions = [], []
    for i, (x, y) in enumerate(metal):
        if i != midx:
            symbols.append(p.metal)
            positions.append((x, y, z0))
    kind_of = {ci: k for ci, k in zip(cidx, kinds, strict=True)}
    columns = {}
    for i, (x, y) in enumerate(chalc):
        label, (top, bottom) = kind_of.get(i, ("host", (p.chalcogen, p.chalcogen)))
        if label != "host":
            columns[label] = (x, y)
        for el, z in ((top, z0 - p.dz / 2), (bottom, z0 + p.dz / 2)):
            if el is not None:
                symbols.append(el)
                positions.append((x, y, z))
    columns["V_M"] = tuple(metal[midx])
    defects = np.array([chalc[i] for i in cidx] + [metal[midx]])
    for name, sites in (("X2", chalc), ("M", metal)):
        far = np.argsort(-periodic_dist(sites, defects, cell).min(axis=1))[:3]
        for k, i in enumerate(far):
            columns[f"{name}#{k}"] = tuple(sites[i])
    atoms = Atoms(symbols, positions=positions, cell=(cell[0], cell[1], 2 * z0), pbc=True)
    return atoms, columns


def probe_positions(p: Preset, columns: dict, cell: tuple, radius: float,
                    step: float) -> tuple[np.ndarray, dict]:
    """Scan points: a disc around each column and small discs on its three hollow sites."""
    r = np.arange(-radius, radius + 1e-9, step)
    gx, gy = np.meshgrid(r, r)
    keep = gx**2 + gy**2 <= radius**2 + 1e-9
    disc = np.stack([gx[keep], gy[keep]], axis=1)
    small = disc[np.linalg.norm(disc, axis=1) <= 0.2 + 1e-9]
    _, _, hollow, _ = lattice_sites(p, *[round(c / s) for c, s in
                                         zip(cell, (p.a, p.a * math.sqrt(3)), strict=True)])
    pts, index = [], {}
    for label, c in columns.items():
        c = np.asarray(c)
        near = np.argsort(periodic_dist(c[None], hollow, cell)[0])[:3]
        start = sum(len(q) for q in pts)
        pts.append(c + disc)
        bg = [hollow[i] + small for i in near]
        pts.extend(bg)
        n_bg = len(small) * 3
        index[label] = (start, len(disc), start + len(disc), n_bg)
    allp = np.concatenate(pts) % np.asarray(cell)
    return allp, index


def integrate(signal: np.ndarray, index: dict) -> dict:
    """Background-subtracted disc sums per column (units: detector fraction × scan points)."""
    out = {}
    for label, (s, n, b, nb) in index.items():
        bg = float(signal[b:b + nb].mean())
        out[label] = float(signal[s:s + n].sum() - n * bg)
    return out


def simulate(p: Preset, kv: float, detectors: list[tuple[float, float]], configs: int,
             radius: float, step: float, sampling: float, parametrization: str,
             slice_thickness: float = 1.0, seed: int = 0, static: bool = False) -> dict:
    """Multislice run of one material at one voltage; integrated intensities per detector
    (``static``: one run on the atoms at rest, no frozen phonons)."""
    import abtem
    import dask

    dask.config.set(scheduler="synchronous")
    atoms, columns = build_cell(p)
    cell = (atoms.cell[0, 0], atoms.cell[1, 1])
    pos, index = probe_positions(p, columns, cell, radius, step)
    sig = {el: SIGMAS[el] for el in set(atoms.get_chemical_symbols())}
    fp = atoms if static else abtem.FrozenPhonons(atoms, num_configs=configs, sigmas=sig, seed=seed)
    gpts = tuple(int(math.ceil(c / sampling / 16) * 16) for c in cell)  # FFT-friendly sizes
    pot = abtem.Potential(fp, gpts=gpts, slice_thickness=slice_thickness,
                          parametrization=parametrization, projection="infinite")
    probe = abtem.Probe(energy=kv * 1e3, semiangle_cutoff=30.0, defocus=0.0)
    dets = [abtem.AnnularDetector(inner=i, outer=o) for i, o in detectors]
    meas = probe.scan(pot, scan=abtem.CustomScan(pos), detectors=dets, lazy=False)
    meas = meas if isinstance(meas, list) else [meas]
    return {f"{i:g}-{o:g}": integrate(np.asarray(m.array).ravel(), index)
            for (i, o), m in zip(detectors, meas, strict=True)}


def ratios(p: Preset, integ: dict, baseline: str = "site") -> dict:
    """Contrast ratios from integrated intensities, in units of one host chalcogen atom.

    ``baseline="site"`` subtracts, on top of the hollow-site background, what the same site
    gives when emptied (the ``-/-`` column for chalcogen columns, ``V_M`` for metal columns):
    the tails of the neighbouring columns inside the disc then cancel exactly.
    ``baseline="hollow"`` keeps the hollow-site background only.
    """
    bx = integ["-/-"] if baseline == "site" else 0.0
    bm = integ["V_M"] if baseline == "site" else 0.0
    c = {k: v - (bm if k.startswith("M#") or k == "V_M" else bx) for k, v in integ.items()}
    x2 = np.mean([v for k, v in c.items() if k.startswith("X2#")])
    m = np.mean([v for k, v in c.items() if k.startswith("M#")])
    x1 = 0.5 * (c["X/-"] + c["-/X"])
    out = {"M/X2": m / x2, "X1/X2": x1 / x2, "s": (x2 - x1) / x1,
           "s (X/- ref)": (x2 - c["X/-"]) / c["-/X"], "X/- : -/X": c["X/-"] / c["-/X"],
           "vac2/X1": integ["-/-"] / (0.5 * (integ["X/-"] + integ["-/X"])), "VM/M": integ["V_M"] / m}
    for d in p.dopants:
        xd, dx, dd = c[f"X/{d}"], c[f"{d}/X"], c[f"{d}/{d}"]
        out[f"{d}: excess"] = (0.5 * (xd + dx) - x1) / x1
        out[f"{d}: excess X/{d}"] = (xd - x1) / x1
        out[f"{d}: excess {d}/X"] = (dx - x1) / x1
        out[f"{d}2/X2"] = dd / x2
        # the simulator's O_S formula (simulate/image.py column_weight): exit-side substituent
        # w_x + s*w_d, entrance-side w_d + s*w_x, either with probability 1/2; the w_d/w_x
        # for which its mean, (1 + s)(1 + w_d/w_x)/2, equals the mean of the two orders
        mean = 0.5 * (xd + dx) / x1
        out[f"{d}: ratio fit"] = 2 * mean / (1 + out["s"]) - 1
    return out


def model_single_atom(p: Preset, kv: float, inner: float, outer: float) -> dict:
    """The same ratios from the package's single-atom cross-sections (``haadf_cross_section``)."""
    from napari_atomdefect.core.materials.physics import haadf_cross_section

    w = {el: haadf_cross_section(Z[el], kv, inner, outer)
         for el in (p.metal, p.chalcogen, *p.dopants)}
    wx = w[p.chalcogen]
    out = {"M/X2": w[p.metal] / (2 * wx), "X1/X2": 0.5, "s": 1.0, "s (X/- ref)": 1.0,
           "X/- : -/X": 1.0, "vac2/X1": 0.0, "VM/M": 0.0}
    for d in p.dopants:
        r = w[d] / wx
        out.update({f"{d}: excess": r, f"{d}: excess X/{d}": r, f"{d}: excess {d}/X": r,
                    f"{d}2/X2": r, f"{d}: ratio fit": r})
    return out


def inner_phase(p: Preset, kv: float, inner_mrad: float) -> float:
    """Phase ``π θ1² Δz / λ`` between the two chalcogen atoms' waves at the inner angle (rad).

    Below ~π/2 the two atoms of a column scatter into the detector largely in phase.
    """
    lam = 12.2643 / math.sqrt(kv * 1e3 * (1 + 0.97845e-6 * kv * 1e3))
    return math.pi * (inner_mrad * 1e-3) ** 2 * p.dz / lam


def cross_term_rows(p: Preset, measured: dict, model: dict) -> dict:
    """Measured vs. a symmetric two-atom model ``I = w1 + w2 + 2 c sqrt(w1 w2)``.

    ``c = (s - 1) / 2`` is taken from the host column; the substituent excess is then predicted
    as ``r + 2 c sqrt(r)`` from the single-atom ratio ``r``, for either order of the two atoms.
    """
    c = (measured["s"] - 1) / 2
    out = {"c (cross term)": (c, float("nan"))}
    for d in p.dopants:
        r = model[f"{d}: excess"]
        out[f"{d}: excess, x-term"] = (measured[f"{d}: excess"], r + 2 * c * math.sqrt(r))
    return out


def print_table(rows: list[dict]) -> None:
    """One line per (material, kV, detector, quantity): measured, model, measured/model."""
    print(f"{'material':7} {'kV':>3} {'detector':>8}  {'quantity':18} {'abTEM':>7} "
          f"{'model':>7} {'ratio':>6}")
    for row in rows:
        measured = row["measured"] or {q: float("nan") for q in row["model"]}
        for q, v in measured.items():
            mod = row["model"].get(q, float("nan"))
            rat = v / mod if mod and not math.isnan(v) else float("nan")
            print(f"{row['material']:7} {row['kv']:>3g} {row['detector']:>8}  {q:18} {v:7.3f} "
                  f"{mod:7.3f} {rat:6.2f}")
        if row["measured"]:
            p = PRESETS[row["material"]]
            inner = float(row["detector"].split("-")[0])
            print(f"{row['material']:7} {row['kv']:>3g} {row['detector']:>8}  {'phase at inner':18} "
                  f"{inner_phase(p, row['kv'], inner):7.3f}")
            for q, (v, mod) in cross_term_rows(p, row["measured"], row["model"]).items():
                print(f"{row['material']:7} {row['kv']:>3g} {row['detector']:>8}  {q:18} "
                      f"{v:7.3f} {mod:7.3f} {v / mod:6.2f}")


def retabulate(paths: list[str]) -> int:
    """Print the table of saved runs (``--json``), the ratios recomputed from their integrals."""
    rows = []
    for path in paths:
        with open(path) as fh:
            for row in json.load(fh):
                p = PRESETS[row["material"]]
                inner, outer = (float(v) for v in row["detector"].split("-"))
                row["model"] = model_single_atom(p, row["kv"], inner, outer)
                row["measured"] = ratios(p, row["integrals"])
                rows.append(row)
    print_table(rows)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--materials", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    ap.add_argument("--kv", nargs="+", type=float, default=[60.0, 80.0])
    ap.add_argument("--detectors", nargs="+", default=["80-200", "60-160"],
                    help="annular detectors as inner-outer in mrad")
    ap.add_argument("--configs", type=int, default=4, help="frozen-phonon configurations")
    ap.add_argument("--static", action="store_true",
                    help="atoms at rest (no frozen phonons): the static-potential case")
    ap.add_argument("--radius", type=float, default=0.6, help="integration disc radius (Å)")
    ap.add_argument("--step", type=float, default=0.2, help="scan step inside the disc (Å)")
    ap.add_argument("--sampling", type=float, default=0.04,
                    help="potential sampling (Å); 0.065 under-resolves high angles (its "
                         "anti-aliasing cut-off is 214 mrad at 80 kV): MoS2 M/X2 3.43 instead "
                         "of 2.80 (converged at 0.04), docs/physics.md")
    ap.add_argument("--slice", type=float, default=1.0, help="slice thickness (Å)")
    ap.add_argument("--parametrization", default="lobato", choices=["lobato", "kirkland"])
    ap.add_argument("--model-only", action="store_true", help="print the model, run no abTEM")
    ap.add_argument("--json", help="write the rows to this JSON file")
    ap.add_argument("--from-json", nargs="+", help="re-tabulate saved runs, run nothing")
    args = ap.parse_args(argv)
    if args.from_json:
        return retabulate(args.from_json)
    dets = [tuple(float(v) for v in d.split("-")) for d in args.detectors]
    rows = []
    for name in args.materials:
        p = PRESETS[name]
        for kv in args.kv:
            t0 = time.perf_counter()
            meas = None
            if not args.model_only:
                meas = simulate(p, kv, dets, args.configs, args.radius, args.step,
                                args.sampling, args.parametrization, args.slice,
                                static=args.static)
            for (i, o) in dets:
                key = f"{i:g}-{o:g}"
                model = model_single_atom(p, kv, i, o)
                rows.append({"material": name, "kv": kv, "detector": key,
                             "parametrization": args.parametrization,
                             "configs": 0 if args.static else args.configs,
                             "radius": args.radius, "sampling": args.sampling, "model": model,
                             "integrals": meas[key] if meas else None,
                             "measured": ratios(p, meas[key]) if meas else None})
            print(f"# {name} {kv:g} kV: {time.perf_counter() - t0:.0f} s", file=sys.stderr,
                  flush=True)
    print_table(rows)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

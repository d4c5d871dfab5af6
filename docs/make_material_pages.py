"""Write the per-material documentation pages ``docs/materials/<material>.md`` and their figures.

Usage (from the repository root):
    python docs/make_material_pages.py                       # runs the held-out benchmark itself
    python docs/make_material_pages.py --bench-json heldout.json --material WS2 WSe2

Each page shows, for one host material (MoS2, WS2, MoSe2, WSe2):

* the classes and substituents the package models for it, with the HAADF reason;
* a held-out simulated image (``benchmarks/bench_materials.py``, seed 960 000 + k) with the columns
  its default model classified overlaid in the class colours (``core/io/class_style.py``), and,
  for WS2 and WSe2 when ``ATOMDEFECT_SHARED_DATA`` holds ``real/``, a real Nion image the same way;
* a histogram of the normalised chalcogen-column intensities by called class;
* the held-out per-class precision / recall / F1 (from the benchmark JSON);
* the model card's training command.

``docs/materials/index.md`` links the pages. The figures go to ``docs/images/materials/``
(PNG, palette-quantised to stay under 150 kB), with the benchmark JSON as ``heldout.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
PAGES = DOCS / "materials"
IMAGES = DOCS / "images" / "materials"
MAX_PNG_BYTES = 150_000
HOSTS = ("MoS2", "WS2", "MoSe2", "WSe2")
#: Real Nion image shown on a material's page: file, substituents to analyse with, what it shows.
REAL_EXAMPLES = {
    "WS2": ("Partially_converted_images_SuperScan__HAADF__12_corrected.tif", "Se",
            "WS2 partly converted to WSe2 (Nion, HAADF), analysed as WS2 with substituent Se"),
    "WSe2": ("Fully_converted_images_SuperScan__HAADF__14_corrected.tif", None,
             "WS2 'fully converted' towards WSe2 (Nion, HAADF), analysed as WSe2 (default "
             "substituents)"),
}
#: What the real images' own W contrast says (``benchmarks/bench_real_composition.py``), shown under
#: the real example of these materials.
REAL_COMPOSITION = [
    "What the real images' own contrast says (no model involved, "
    "`python benchmarks/bench_real_composition.py ../shared/data/real --figure ...`): measured "
    "against each image's W columns, which do not change when S is replaced by Se, the partly "
    "converted images show an S2 population (0.1–0.2 of a W column) and an S + Se one "
    "(0.35–0.5); the 'fully converted' image has 9 % of its chalcogen columns at the S2 level, "
    "65 % at the S + Se level and 26 % at the Se2 level (0.5–0.7, which the partly converted "
    "images barely reach). It is an S/Se alloy well past half Se, not a uniform WSe2 layer: as "
    "WSe2 most of its columns are `S_Se`, as WS2 with Se most are `Se_S`.",
    "",
    "![chalcogen/metal levels of the real images](../images/real_composition.png)",
    "",
]
#: matplotlib marker of each napari symbol of ``class_style``.
MPL_MARKERS = {"disc": "o", "square": "s", "diamond": "D", "star": "*", "triangle_up": "^",
               "triangle_down": "v", "cross": "x", "x": "X"}
PRISTINE_COLOUR = "#9a9a9a"
#: Atomic numbers (Te added where the package's table has no entry for it yet).
Z_EXTRA = {"Te": 52}


def bench():
    """``benchmarks/bench_materials.py`` (held-out images, analysis and scores)."""
    if "bench_materials" in sys.modules:
        return sys.modules["bench_materials"]
    path = REPO / "benchmarks" / "bench_materials.py"
    spec = importlib.util.spec_from_file_location("bench_materials", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_materials"] = module
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------------------- figures
def save_png(fig, path: Path) -> Path:
    """Save a matplotlib figure as a palette PNG (≤ ``MAX_PNG_BYTES``, fewer colours if needed)."""
    import matplotlib.pyplot as plt
    from PIL import Image

    fig.savefig(path, dpi=100)
    plt.close(fig)
    rgb = Image.open(path).convert("RGB")
    rgb.save(path, optimize=True)
    for colours in (256, 128, 64, 32):
        if path.stat().st_size <= MAX_PNG_BYTES:
            break
        rgb.quantize(colors=colours, method=Image.Quantize.FASTOCTREE,
                     dither=Image.Dither.NONE).save(path, optimize=True)
    return path


def class_label(name: str) -> str:
    return "pristine" if name == "chalcogen" else name


def class_style(name: str) -> tuple[str, str]:
    """(colour, matplotlib marker) of a called class (pristine chalcogen: grey dot)."""
    from napari_atomdefect.core.io.class_style import class_color, class_symbol

    if name == "chalcogen":
        return PRISTINE_COLOUR, "."
    return class_color(name), MPL_MARKERS.get(class_symbol(name), "x")


def crop_box(shape: tuple[int, int], size: int) -> tuple[int, int, int, int]:
    """Central ``size`` × ``size`` window (or the whole image) as ``(r0, r1, c0, c1)``."""
    h, w = shape
    r0, c0 = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return r0, min(h, r0 + size), c0, min(w, c0 + size)


def overlay_figure(image: np.ndarray, defects, title: str, path: Path, crop: int = 400,
                   class_column: str = "class") -> Path:
    """The image (central crop) with each defect column marked in its class colour and symbol."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from napari_atomdefect.core.io.preview import to_display

    r0, r1, c0, c1 = crop_box(image.shape, crop)
    fig, ax = plt.subplots(figsize=(4.6, 4.9))
    ax.imshow(to_display(image[r0:r1, c0:c1]), cmap="gray", interpolation="nearest")
    inside = defects[(defects.y_px >= r0) & (defects.y_px < r1) & (defects.x_px >= c0)
                     & (defects.x_px < c1)]
    for name, group in inside.groupby(class_column, sort=False):
        colour, marker = class_style(str(name))
        ax.scatter(group.x_px - c0, group.y_px - r0, s=60, marker=marker, facecolors="none",
                   edgecolors=colour, linewidths=1.3, label=f"{name} ({len(group)})")
    ax.set_axis_off()
    ax.set_title(title, fontsize=8)
    if len(inside):
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=4, fontsize=7,
                  frameon=False, handletextpad=0.2, columnspacing=0.8)
    fig.tight_layout()
    return save_png(fig, path)


def _histogram_panel(ax, columns, column: str, bins: np.ndarray, classes: tuple[str, ...],
                     title: str) -> None:
    """One panel: the intensities of ``columns`` split by ``columns[column]``."""
    from napari_atomdefect.core.materials.columns import ALL_CLASS_NAMES, lookup_class

    present = set(columns[column])
    order = ["chalcogen"] + [c for c in (*classes, *ALL_CLASS_NAMES) if c in present]
    order = list(dict.fromkeys(order))
    order += sorted(set(columns[column]) - set(order))
    for name in order:
        values = columns.intensity[columns[column] == name]
        if len(values) == 0:
            continue
        colour, _ = class_style(name)
        double = getattr(lookup_class(name), "kind", None) == "D2_X2"  # same colour as D_X
        ax.hist(values, bins=bins, color=colour, alpha=0.75, histtype="stepfilled",
                edgecolor="black", linewidth=0.3, hatch="////" if double else None,
                label=f"{class_label(name)} ({len(values)}, mean {values.mean():.2f})")
    ax.set_yscale("log")
    ax.set_xlabel("chalcogen column intensity (background 0, median column 1)", fontsize=7)
    ax.set_ylabel("columns", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_title(title, fontsize=8)
    ax.legend(fontsize=6, frameon=False)


def histogram_figure(columns, title: str, path: Path, classes: tuple[str, ...]) -> Path:
    """Histogram of normalised chalcogen-column intensities, one colour per called class, and
    per true class beside it when ``columns`` has a ``truth`` column (simulated images)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hi = max(2.5, float(np.percentile(columns.intensity, 99.7)) + 0.2) if len(columns) else 2.5
    bins = np.linspace(-0.5, hi, 70)
    with_truth = "truth" in columns
    fig, axes = plt.subplots(1, 2 if with_truth else 1, figsize=(9.0 if with_truth else 5.2, 2.9),
                             sharey=True, squeeze=False)
    _histogram_panel(axes[0, 0], columns, "class", bins, classes,
                     f"{title}: by called class" if with_truth else title)
    if with_truth:
        _histogram_panel(axes[0, 1], columns, "truth", bins, classes, f"{title}: by true class")
    fig.tight_layout()
    return save_png(fig, path)


def with_truth(columns, sites, radius_px: float):
    """``columns`` with ``truth``: the simulated class of the nearest chalcogen column."""
    from scipy.spatial import cKDTree

    chalc = sites[sites["sublattice"] == "chalcogen"]
    dist, idx = cKDTree(chalc[["y_px", "x_px"]].to_numpy(float)).query(
        columns[["y_px", "x_px"]].to_numpy(float))
    truth = chalc["class"].astype(str).to_numpy()[idx]
    out = columns.copy()
    out["truth"] = np.where(dist <= radius_px, truth, "unmatched")
    return out


# ---------------------------------------------------------------------------------------- physics
def atomic_number(element: str) -> int:
    from napari_atomdefect.core.materials.materials import ATOMIC_NUMBER

    return {**Z_EXTRA, **ATOMIC_NUMBER}[element]


def single_atom_ratio(substituent: str, host: str) -> float:
    """HAADF cross-section of one ``substituent`` atom over one ``host`` atom (80 kV, 80–200 mrad)."""
    from napari_atomdefect.core.materials.physics import haadf_cross_section

    return haadf_cross_section(atomic_number(substituent)) / haadf_cross_section(
        atomic_number(host))


def ratio_span(substituent: str, host: str) -> tuple[float, float]:
    """Single-atom ratio over the simulator's Z-exponent tilt (−0.3…+0.05)."""
    r = single_atom_ratio(substituent, host)
    q = atomic_number(substituent) / atomic_number(host)
    lo, hi = sorted((r * q ** -0.3, r * q ** 0.05))
    return lo, hi


def column_signal(cls, host: str) -> str:
    """Expected signal of a chalcogen column of class ``cls`` relative to a pristine one."""
    if cls.site == "metal":
        return "no metal atom"
    units = sum(0.0 if a is None else (1.0 if a == host else single_atom_ratio(a, host))
                for a in cls.atoms)
    rel = units / 2
    return f"≈ {rel:.2f}"


def not_a_class_notes(material) -> list[str]:
    """The bullets of ``core/materials/columns.py`` on compositions that are no class, for
    ``material`` (sulfides: mixed column, ``O2_X2``; selenides: mixed column, O in selenides)."""
    from napari_atomdefect.core.materials import columns

    doc = inspect.getdoc(columns) or ""
    if "Not separate classes" not in doc:
        return []
    part = doc.split("Not separate classes", 1)[1]
    bullets = [" ".join(b.split()) for b in part.split("\n* ")[1:]]
    selenide = material.chalcogen == "Se"
    keep = []
    for b in bullets:
        b = b.split('"""')[0].strip()
        if "O in selenides" in b and not selenide:
            continue
        if "O2_X2" in b and selenide:
            continue
        keep.append("* " + b)
    return keep


def classes_section(material: str, model_subs: tuple[str, ...] | None) -> list[str]:
    from napari_atomdefect.core.io.class_style import SYMBOL_GLYPHS, class_color, class_symbol
    from napari_atomdefect.core.materials.columns import (
        column_classes,
        default_substituents,
        supported_substituents,
    )
    from napari_atomdefect.core.materials.materials import get_material

    mat = get_material(material)
    host = mat.chalcogen
    supported = supported_substituents(mat)
    lines = ["## Classes and substituents", "",
             f"Substituents modelled in {material}: **{', '.join(supported)}** "
             f"(default when none is named: **{', '.join(default_substituents(mat))}**). "
             "The detector is trained for all of them; the substituents chosen for a run "
             "(`--substituents`, the widget's check boxes) only mask the others at read-out, "
             "so a class of an unchosen substituent is never reported.", ""]
    if model_subs is not None:
        lines += [f"The bundled model knows: {', '.join(model_subs) or 'no substituent'}.", ""]
    lines += ["| class | marker | column holds | signal vs. pristine column |",
              "|---|---|---|---|"]
    for cls in column_classes(mat):
        holds = " + ".join("—" if a is None else a for a in cls.atoms)
        glyph = SYMBOL_GLYPHS.get(class_symbol(cls.name), "?")
        lines.append(f"| `{cls.name}` | {glyph} `{class_color(cls.name)}` | {holds} ({cls.site}) | "
                     f"{column_signal(cls, host)} |")
    ratios = ", ".join(f"{d}/{host} ≈ {single_atom_ratio(d, host):.2f}" for d in supported)
    spans = ", ".join(f"{d}/{host} {lo:.2f}–{hi:.2f}" for d in supported
                      for lo, hi in [ratio_span(d, host)])
    lines += ["", f"Single-atom HAADF cross-sections (screened Rutherford, 80 kV, 80–200 mrad; "
              f"`core/materials/physics.py`): {ratios}; the simulator also tilts the effective "
              f"Z exponent by −0.3…+0.05 for model error, which spans {spans}. The signal column "
              "above uses the untilted single-atom ratios, without the coherent cross term of the "
              "two atoms of a column (docs/physics.md). A heavier substituent makes its column "
              "brighter than a pristine one; a lighter one makes it look like a vacancy, which "
              "is why the scores also list the merged group `V_X|D_X` for light substituents.",
              ""]
    notes = not_a_class_notes(mat)
    if notes:
        lines += ["Compositions that are **not** classes of their own "
                  "(from `core/materials/columns.py`):", ""] + notes + [""]
    return lines


# ----------------------------------------------------------------------------------------- pages
def scores_section(entry: dict | None) -> list[str]:
    lines = ["## Held-out accuracy (simulated)", ""]
    if entry is None:
        return lines + ["Not measured (no benchmark figures given).", ""]
    if "skipped" in entry:
        return lines + [f"Not measured: {entry['skipped']}.", ""]
    kinds: dict[str, int] = {}
    for im in entry["images"]:
        kinds[im["kind"]] = kinds.get(im["kind"], 0) + 1
    kind_text = ", ".join(f"{n} {k}" for k, n in kinds.items())
    misfit = [im for im in entry["images"] if im["fit_messages"]]
    lines += [f"{entry['n_images']} held-out images of {entry['size_px']} px (seeds "
              f"{entry['seeds'][0]}–{entry['seeds'][1]}; {kind_text}), model `{entry['model']}` "
              f"with substituents {', '.join(entry['substituents']) or 'none'}; pooled over the "
              f"images, matching radius {entry['radius_nm']} nm "
              "(`benchmarks/bench_materials.py`, `core/detect/evaluate.py`). A class the image "
              "holds but the model cannot produce scores 0.", ""]
    if misfit:
        lines += [f"Images on which detection warned ({len(misfit)} of "
                  f"{len(entry['images'])}, scored all the same: the model-fit check, a "
                  "pair of classes the image could not tell apart, or single vacancies the "
                  "reading cannot class in an alloy):", ""]
        lines += [f"- seed {im['seed']} ({im['kind']}, {im['n_true']} true, {im['n_pred']} "
                  f"called): {im['fit_messages'][0]}" for im in misfit] + [""]
    lines += score_table(entry["per_class"])
    fitting = entry.get("per_class_fitting")
    if misfit and fitting:
        lines += [f"The {len(entry['images']) - len(misfit)} images without a warning "
                  "only:", ""] + score_table(fitting)
    return lines


def score_table(per_class: dict) -> list[str]:
    """Markdown table of pooled per-class figures."""
    def fmt(v) -> str:
        return "—" if v is None else f"{v:.2f}"

    lines = ["| class | true | called | precision | recall | F1 |", "|---|---|---|---|---|---|"]
    for name, row in per_class.items():
        cell = name.replace("|", "\\|")  # a merged group's bar would end the table cell
        lines.append(f"| `{cell}` | {row['n_true']} | {row['n_pred']} | {fmt(row['precision'])} "
                     f"| {fmt(row['recall'])} | {fmt(row['f1'])} |")
    return lines + [""]


def model_section(material: str, info) -> list[str]:
    from napari_atomdefect.core.models.registry import model_classes, model_substituents

    lines = ["## Model", ""]
    if info is None:
        why = bench().material_model(material)[1]
        return lines + [f"No bundled model yet: {why}. Until there is one, detection of "
                        f"{material} uses `mos2-default` and says so.", ""]
    from napari_atomdefect.core.models.registry import default_model_name

    card = info.card
    plain = default_model_name(material)
    other = (f" Without an alloying substituent chosen, detection uses `{plain}` (better on the "
             f"light substituent and vacancies; see [models.md](../models.md))."
             if plain != info.name else "")
    lines += [f"Model with every substituent chosen: `{info.name}` (material "
              f"{card.get('material', 'MoS2')}, created {card.get('created', '?')}): classes "
              f"{', '.join(model_classes(info))}; substituents "
              f"{', '.join(model_substituents(info)) or 'none'}.{other}", ""]
    if card.get("command"):
        lines += training_command_lines(str(card["command"]))
    return lines


def training_command_lines(command: str) -> list[str]:
    """A card's training command as a page shows it: one command a line in a bash block (the
    card chains them with ``&&``), the prose note it ends with below the block."""
    import re

    note = ""
    last = re.search(r" \((?=[a-z])(.*)\)\s*$", command)
    if last:  # "… --decide-on model (the last round, …)": a note, not part of the command
        command, note = command[:last.start()], last.group(1)
    steps = [s.strip() for s in command.split(" && ") if s.strip()]
    out = ["Trained with (the bundled model's whole lineage, from the repository's root; "
           "`make bundled-models` runs it; a model of your own goes to your own folder or to "
           "the Fine-tune widget, never over the bundled one):", "", "```bash", *steps, "```", ""]
    if note:
        out += [note[0].upper() + note[1:] + ".", ""]
    return out


def example_section(material: str, info, size: int) -> tuple[list[str], dict]:
    """Figures of the held-out simulated image (and the real image) of ``material``."""
    b = bench()
    IMAGES.mkdir(parents=True, exist_ok=True)
    key = material.lower()
    lines = ["## Examples", ""]
    facts: dict = {}
    k = 0  # the first held-out image: every substituent ("mixed") when the simulator has them
    item = b.heldout_image(material, k, size)
    if info is not None:
        result = b.analyse(item, info)
        title = (f"held-out simulated {material} (seed {item.seed}, {item.kind}), "
                 f"called by {info.name}")
        over = overlay_figure(item.image, result["defects"], title, IMAGES / f"{key}_sim.png")
        cols = with_truth(b.chalcogen_intensities(item.image, result), item.sites,
                          0.25 * result["lattice"].a_px)
        hist = histogram_figure(cols, f"simulated {material}", IMAGES / f"{key}_sim_hist.png",
                                tuple(result["classes"]))
        what = "the columns its default model called defects"
    else:
        title = f"held-out simulated {material} (seed {item.seed}): simulated truth"
        over = overlay_figure(item.image, item.truth, title, IMAGES / f"{key}_sim.png")
        hist = None
        what = "the simulated defect columns (no model for this material yet)"
    lines += [f"Held-out simulated image (seed {item.seed}, pixel {item.pixel_size_nm:.4f} nm, "
              f"dose {item.dose:.2g} e/Å², substituents "
              f"{', '.join(item.substituents or ()) or 'as the simulator defaults'}), "
              f"central crop, with {what}:", "", f"![simulated {material}](../images/materials/"
              f"{over.name})", ""]
    if hist is not None:
        lines += ["Normalised chalcogen-column intensities of that image by called class (left) "
                  "and by simulated content (right):", "",
                  f"![histogram](../images/materials/{hist.name})", ""]
    lines += real_example(material, info, facts)
    return lines, facts


def short_name(fname: str) -> str:
    """``Fully_converted #14`` for ``Fully_converted_images_SuperScan__HAADF__14_corrected.tif``."""
    import re

    number = re.search(r"__(\d+)_corrected", fname)
    return fname.split("_images")[0] + (f" #{number.group(1)}" if number else "")


def real_example(material: str, info, facts: dict) -> list[str]:
    """The real Nion image of ``material`` analysed with its model, when data and model exist."""
    if material not in REAL_EXAMPLES:
        return []
    fname, subs, what = REAL_EXAMPLES[material]
    shared = os.environ.get("ATOMDEFECT_SHARED_DATA")
    path = Path(shared) / "real" / fname if shared else None
    if path is None or not path.is_file():
        return [f"Real example: `{fname}` (shared data not found when this page was written).",
                ""]
    from napari_atomdefect.core.models.registry import model_substituents

    if info is None or (subs and subs not in model_substituents(info)):
        return [f"Real example `{fname}`: not shown, no bundled {material} model "
                f"{'for ' + subs if subs else ''} yet.", ""]
    from napari_atomdefect.core.detect.detect import iter_detect
    from napari_atomdefect.core.io.image import read_image
    from napari_atomdefect.core.progress import run_to_end

    img = read_image(path)
    arr = np.asarray(img.data, np.float32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_to_end(iter_detect(arr, img.pixel_size_nm, material, info, "cpu",
                                        calibration="file", substituents=subs))
    key = material.lower()
    title = f"real: {short_name(fname)}, analysed as {material}" + (f" with {subs}" if subs else "")
    over = overlay_figure(arr, result["defects"], title, IMAGES / f"{key}_real.png", crop=512)
    cols = bench().chalcogen_intensities(arr, result)
    hist = histogram_figure(cols, "real image: chalcogen columns by called class",
                            IMAGES / f"{key}_real_hist.png", tuple(result["classes"]))
    counts = cols["class"].value_counts()
    means = cols.groupby("class").intensity.mean()
    facts["real"] = {"file": fname, "counts": {k: int(v) for k, v in counts.items()},
                     "means": {k: round(float(v), 3) for k, v in means.items()},
                     "fit_messages": list(result["fit_messages"]),
                     "warnings": sorted({str(w.message) for w in caught})}
    summary = "; ".join(f"{class_label(c)} {int(counts[c])} (mean {means[c]:.2f})"
                        for c in counts.index)
    shown = "The whole image" if max(arr.shape) <= 512 else "Central 512 px crop"
    lines = [f"Real image `{fname}`: {what}. {shown}:", "",
             f"![real {material}](../images/materials/{over.name})", "",
             f"![real histogram](../images/materials/{hist.name})", "",
             "Chalcogen columns per called class, those more than a pixel inside the image "
             f"(mean normalised intensity): {summary}."]
    if result["fit_messages"]:
        lines += ["", "Model-fit check on this image:", ""]
        lines += [f"- {m}" for m in result["fit_messages"]]
    return lines + [""] + REAL_COMPOSITION


def metal_alloy_section(material: str, info) -> list[str]:
    """A Mo/W alloy of ``material`` (our simulator, a quarter of the metal sites the other
    metal, one random microscope at 5e5 e/Å²) called with the other metal named: the image with
    its calls, the metal columns' levels by simulated atom, and the scores."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from napari_atomdefect.core.cells.background import hollow_sites_px
    from napari_atomdefect.core.cells.normalize import site_smoothed, site_values
    from napari_atomdefect.core.detect.detect import iter_detect
    from napari_atomdefect.core.detect.evaluate import score
    from napari_atomdefect.core.materials.columns import (
        METAL_SUBSTITUENTS,
        default_substituents,
    )
    from napari_atomdefect.core.materials.materials import get_material
    from napari_atomdefect.core.sampling import sample_bilinear
    from napari_atomdefect.core.simulate.image import MicroscopeParams, simulate_image

    if info is None:
        return []
    mat = get_material(material)
    other = METAL_SUBSTITUENTS[mat.metal][0]
    cls = f"{other}_{mat.metal}"
    seed = 31000 + list(HOSTS).index(material)
    params = MicroscopeParams.random(np.random.default_rng(seed), mat, dose_e_per_A2=5e5)
    sim = simulate_image(mat, 384, 0.012, params=params, seed=seed, metal_alloy=0.25)
    subs = ",".join((*default_substituents(mat), other))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = [it for it in iter_detect(sim.image, pixel_size_nm=0.012, material=mat.name,
                                           model=info, device="cpu", substituents=subs)
                  if it.get("done")][-1]
    key = material.lower()
    over = overlay_figure(sim.image, result["defects"], f"simulated {material} + 25 % {other}, "
                          f"called with {subs}", IMAGES / f"{key}_mow.png", crop=384)
    lattice = result["lattice"]
    smoothed = site_smoothed(sim.image, lattice)
    background = float(np.median(site_values(smoothed, hollow_sites_px(lattice))))
    sites = lattice.metal_sites_px
    levels = sample_bilinear(smoothed, sites[:, 0], sites[:, 1]) - background
    truth = sim.sites[sim.sites.sublattice == "metal"]
    from scipy.spatial import cKDTree

    _, k = cKDTree(truth[["y_px", "x_px"]].to_numpy()).query(sites)
    atoms = np.where(truth["class"].to_numpy()[k] == cls, other,
                     np.where(truth["class"].to_numpy()[k] == "metal", mat.metal, "vacancy"))
    host = float(np.median(levels[atoms == mat.metal]))
    fig, ax = plt.subplots(figsize=(5.2, 2.6))
    bins = np.linspace(-0.2, max(3.4, float(np.percentile(levels / host, 99.8)) + 0.2), 70)
    for atom, colour in ((mat.metal, PRISTINE_COLOUR), (other, class_style(cls)[0]),
                         ("vacancy", class_style(f"V_{mat.metal}")[0])):
        values = levels[atoms == atom] / host
        if len(values):
            ax.hist(values, bins=bins, color=colour, alpha=0.8, edgecolor="black", linewidth=0.3,
                    label=f"{atom} ({len(values)})")
    ax.set_yscale("log")
    ax.set_xlabel(f"metal column intensity (background 0, {mat.metal} column 1)", fontsize=7)
    ax.set_ylabel("columns", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, frameon=False)
    ax.set_title("metal columns by simulated atom", fontsize=8)
    fig.tight_layout()
    hist = save_png(fig, IMAGES / f"{key}_mow_hist.png")
    table = score(result["defects"], sim.defects, 0.08 / 0.012)
    rows = [f"| `{str(name).replace('|', chr(92) + '|')}` | {int(r.n_true)} | {int(r.n_pred)} "
            f"| {r.f1:.2f} |" for name, r in table.iterrows() if r.n_true or r.n_pred]
    return ["## A Mo/W alloy", "",
            f"Our simulator's {material} with a quarter of its metal sites {other} (one random "
            f"microscope, 5e5 e/Å², 0.012 nm/px), detected with `--substituents {subs}`: the "
            f"{other} columns are called `{cls}` (✕) from the metal columns' two levels, the "
            "chalcogen defects as in the pure host ([Mo/W alloys](../model_fit.md"
            "#a-mow-alloy-the-metal-columns-in-two-levels)).", "",
            f"![{material} + {other}](../images/materials/{over.name})", "",
            f"![metal levels](../images/materials/{hist.name})", "",
            "| class | true | called | F1 |", "|---|---|---|---|", *rows, ""]


def write_page(material: str, entry: dict | None, size: int) -> dict:
    """Write ``docs/materials/<material>.md``; returns facts for the index."""
    from napari_atomdefect.core.materials.columns import column_classes, supported_substituents
    from napari_atomdefect.core.materials.materials import get_material
    from napari_atomdefect.core.models.registry import model_substituents

    info, _ = bench().material_model(material)
    mat = get_material(material)
    lines = [f"# {material}", "",
             f"Monolayer 2H-{material}: metal {mat.metal}, chalcogen {mat.chalcogen}, lattice "
             f"constant {mat.a_nm:.3f} nm. Choose it with `--material {material}` (CLI) or the "
             "Material box of the widgets.", "",
             "*Written by `docs/make_material_pages.py`; do not edit by hand.*", ""]
    lines += classes_section(material, model_substituents(info) if info else None)
    heavy = [d for d in supported_substituents(mat) if atomic_number(d) > atomic_number(mat.chalcogen)]
    lines += ["For example, to look for every substituent the package models in this material "
              "(from the command line):", "", "```bash",
              f"atomdefect detect image.tif --material {material} "
              f"--substituents {','.join(supported_substituents(mat))} --out defects.csv", "```",
              ""]
    if heavy:
        d = heavy[0]
        own = [c.name for c in column_classes(mat, (d,)) if c.substituent == d]
        others = [c.name for c in column_classes(mat) if c.substituent not in (None, d)]
        lines += [f"With `--substituents {d}`, columns holding {d} are called "
                  f"{' / '.join(f'`{c}`' for c in own)} and "
                  f"{' / '.join(f'`{c}`' for c in others)} {'is' if len(others) == 1 else 'are'} never "
                  "reported (masked at "
                  "read-out).", ""]
    lines += model_section(material, info)
    lines += scores_section(entry)
    example, facts = example_section(material, info, size)
    lines += example
    lines += metal_alloy_section(material, info)
    PAGES.mkdir(parents=True, exist_ok=True)
    (PAGES / f"{material}.md").write_text("\n".join(lines).rstrip() + "\n")
    return {"material": material, "model": info.name if info else None, **facts}


def write_index(rows: list[dict], entries: dict[str, dict]) -> None:
    from napari_atomdefect.core.materials.columns import (
        METAL_SUBSTITUENTS,
        class_names,
        default_substituents,
        metal_substituent_classes,
        supported_substituents,
    )
    from napari_atomdefect.core.materials.materials import MATERIALS

    lines = ["# Materials", "",
             "One page per host material: the classes and substituents modelled, the bundled "
             "model and how it was trained, its held-out accuracy on simulated images, and "
             "example images (real Nion images of converted WS2 where available).", "",
             "| material | page | bundled model | substituents (default) | classes | other metal "
             "(Mo/W alloy) |",
             "|---|---|---|---|---|---|"]
    from napari_atomdefect.core.models.registry import default_model_name

    for row in rows:
        m = row["material"]
        model = f"`{row['model']}`" if row["model"] else "—"
        if row["model"] and default_model_name(m) != row["model"]:  # a model for the alloys
            model = f"`{default_model_name(m)}` ({model} with an alloying substituent)"
        lines.append(f"| {m} | [{m}]({m}.md) | {model}"
                     f" | {', '.join(supported_substituents(m))} "
                     f"({', '.join(default_substituents(m))}) | {', '.join(class_names(m))} | "
                     f"{', '.join(METAL_SUBSTITUENTS[MATERIALS[m].metal])}: "
                     f"{', '.join(c.name for c in metal_substituent_classes(m))} |")
    lines += ["", "The other metal of a Mo/W alloy is ticked like a substituent; its columns are "
              "called from the metal columns' two levels, not by the network "
              "([Mo/W alloys](../model_fit.md#a-mow-alloy-the-metal-columns-in-two-levels)).",
              "", "*Written by `docs/make_material_pages.py`.*"]
    (PAGES / "index.md").write_text("\n".join(lines) + "\n")


def _stored(name: str, key: str | None = None) -> list[dict]:
    """The per-material entries of a JSON file this script wrote before (none when absent)."""
    path = IMAGES / name
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    return list(data[key] if key else data)


def _merged(stored: list[dict], fresh: list[dict]) -> list[dict]:
    """``stored`` entries with those of ``fresh`` put in their place, in the order of HOSTS."""
    by_material = {e["material"]: e for e in stored} | {e["material"]: e for e in fresh}
    return [by_material[m] for m in HOSTS if m in by_material]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bench-json", help="figures of benchmarks/bench_materials.py (default: run "
                    "it now and keep them in docs/images/materials/heldout.json)")
    ap.add_argument("--n-images", type=int, default=12)
    ap.add_argument("--size", type=int, default=320)
    ap.add_argument("--material", nargs="+", default=list(HOSTS), choices=HOSTS)
    args = ap.parse_args(argv)
    IMAGES.mkdir(parents=True, exist_ok=True)
    if args.bench_json:
        data = json.loads(Path(args.bench_json).read_text())
    else:
        data = {"materials": [bench().bench_material(m, args.n_images, args.size)
                              for m in args.material]}
        # A run for some materials keeps the stored figures of the others.
        data["materials"] = _merged(_stored("heldout.json", "materials"), data["materials"])
        (IMAGES / "heldout.json").write_text(json.dumps(data, indent=1))
    entries = {e["material"]: e for e in data["materials"]}
    rows = []
    for m in args.material:
        rows.append(write_page(m, entries.get(m), args.size))
        print(f"wrote {PAGES / (m + '.md')}", flush=True)
    rows = _merged(_stored("facts.json"), rows)
    write_index(rows, entries)
    (IMAGES / "facts.json").write_text(json.dumps(rows, indent=1))
    for png in sorted(IMAGES.glob("*.png")):
        print(f"{png.name}: {png.stat().st_size // 1000} kB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env bash
# Build the wheel, install it into a fresh virtual environment (no source tree on the path) and run
# `atomdefect detect` on a simulated image: proves that a pip user gets the bundled weights.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_PIN=${TORCH_PIN:-torch==2.13.0}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
.venv/bin/python -m pip wheel --quiet --no-deps --no-build-isolation -w "$work/dist" .
wheel=$(ls "$work"/dist/napari_atomdefect-*.whl)
n=$(.venv/bin/python -c "import sys, zipfile; print(sum(f.endswith('.safetensors') for f in zipfile.ZipFile(sys.argv[1]).namelist()))" "$wheel")
echo "wheel: $(basename "$wheel") holds $n safetensors files"
[ "$n" -ge 2 ] || { echo "the wheel holds no bundled weights" >&2; exit 1; }
"$PYTHON" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --upgrade pip
"$work/venv/bin/python" -m pip install --quiet "$TORCH_PIN" "$wheel"
cd "$work"   # away from the source tree: only the installed wheel can be imported
"$work/venv/bin/atomdefect" simulate --material MoS2 --size 384 --pixel-size-nm 0.012 --dose 1e6 \
  --seed 1 --out sim
"$work/venv/bin/atomdefect" detect sim/image.tif --material MoS2 --out sim/found.csv
"$work/venv/bin/atomdefect" evaluate sim/found.csv sim/defects.csv --radius-nm 0.08
"$work/venv/bin/atomdefect" detect sim/image.tif --material MoS2 --substituents O,Se \
  --out sim/found_alloy.csv
"$work/venv/bin/python" - <<'PY'
import napari_atomdefect, pandas as pd
from napari_atomdefect.core.models.registry import list_models
assert "site-packages" in napari_atomdefect.__file__, napari_atomdefect.__file__
found, truth = pd.read_csv("sim/found.csv"), pd.read_csv("sim/defects.csv")
bundled = [m.name for m in list_models() if m.bundled]
print(f"installed wheel: {len(found)} defects found, {len(truth)} true; bundled models {bundled}")
assert bundled and len(truth) > 0 and 0.5 * len(truth) <= len(found) <= 2 * len(truth)
assert {"mos2-default", "mos2-alloy", "ws2-default", "wse2-default", "mose2-default"} <= set(bundled)
alloy = pd.read_csv("sim/found_alloy.csv")
assert 0.5 * len(truth) <= len(alloy) <= 2 * len(truth), len(alloy)
PY
echo "wheel check passed"

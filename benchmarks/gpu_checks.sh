#!/usr/bin/env bash
# The GPU checks of issue #15, as one script for a machine with a CUDA GPU (a lent accelerator).
#
# Usage: bash benchmarks/gpu_checks.sh OUTDIR [REAL_IMAGES_DIR]
#
# Writes into OUTDIR: gpu.txt (GPU, driver, torch), test_gpu.log (tests/test_gpu.py: CUDA gives
# the CPU's answers), bench_gpu.md (benchmarks/bench_suite.py --device cuda), real_cpu_vs_cuda.txt
# (atomdefect detect on each .tif of REAL_IMAGES_DIR on both devices: time and differing calls),
# suite.log (the non-viewer test suite with device "auto", i.e. on the GPU; needs pytest-xdist).
# Each part has its own time limit, so one slow part cannot take the others' time. PYTHON
# (default python3) runs it, with the package importable (installed, or PYTHONPATH=src).
set -u
out=${1:?usage: gpu_checks.sh OUTDIR [REAL_IMAGES_DIR]}
real=${2:-}
py=${PYTHON:-python3}
mkdir -p "$out"
export PYTHONUNBUFFERED=1

{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  "$py" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, \
'cuDNN', torch.backends.cudnn.version(), torch.cuda.get_device_name(0))"
  nproc
} > "$out/gpu.txt" 2>&1
cat "$out/gpu.txt"

timeout 240 "$py" -m pytest -q -p no:randomly -p no:cacheprovider tests/test_gpu.py \
  > "$out/test_gpu.log" 2>&1
tail -n 3 "$out/test_gpu.log"

timeout 240 "$py" benchmarks/bench_suite.py --device cuda --sizes 512 1024 4096 --repeat 3 \
  --batch-n 8 > "$out/bench_gpu.md" 2>&1
cat "$out/bench_gpu.md"

if [ -n "$real" ]; then
  timeout 180 "$py" - "$real" "$out" > "$out/real_cpu_vs_cuda.txt" 2>&1 <<'EOF'
import subprocess, sys, time
from pathlib import Path
import pandas as pd

real, out = Path(sys.argv[1]), Path(sys.argv[2])
print("| image | material | CPU s | CUDA s | calls CPU | calls CUDA | sites with another class |")
print("|---|---|---|---|---|---|---|")
for tif in sorted(real.glob("*.tif")):
    tables, times = {}, {}
    for dev in ("cpu", "cuda"):
        csv = out / f"{tif.stem[:24]}_{dev}.csv"
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "napari_atomdefect.cli", "detect", str(tif),
                        "--material", "WS2", "--substituents", "Se", "--device", dev,
                        "--out", str(csv)], check=True, capture_output=True)
        times[dev] = time.perf_counter() - t0
        tables[dev] = pd.read_csv(csv, comment="#")
        csv.unlink()
    a, b = (t.set_index([t["y_px"].round(1), t["x_px"].round(1)])["class"]
            for t in (tables["cpu"], tables["cuda"]))
    joined = pd.concat([a.rename("cpu"), b.rename("cuda")], axis=1)
    differ = int((joined["cpu"] != joined["cuda"]).sum())
    print(f"| {tif.name[:40]} | WS2+Se | {times['cpu']:.1f} | {times['cuda']:.1f} | "
          f"{len(a)} | {len(b)} | {differ} |", flush=True)
EOF
  cat "$out/real_cpu_vs_cuda.txt"
fi

# -v: a run cut off by its time limit still names each failure as it happens (about 4 min on
# 14 workers of a 16-core machine for ~640 tests; the viewer tests need napari and a display).
timeout 300 "$py" -m pytest -v -p no:randomly -p no:cacheprovider -n 14 --ignore=tests/viewer \
  tests > "$out/suite.log" 2>&1
grep -E "FAILED|ERROR|passed|failed" "$out/suite.log" | grep -v PASSED | tail -n 40

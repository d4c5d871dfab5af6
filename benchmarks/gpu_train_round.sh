#!/usr/bin/env bash
# One training round of the four host detectors at once, for a machine with a CUDA GPU and many
# cores (a lent accelerator: 16 cores, one GPU). Each detector continues from its bundled model
# with the flags of its own lineage (Makefile, bundled-models); the training images are simulated
# in WORKERS processes per detector, the steps run on the GPU. Each finished model is packed into
# OUTDIR/<name>.tar as soon as it is done (a run cut off by a time limit keeps the finished ones),
# with its log beside it. Calibrate and judge them afterwards on any machine:
#   atomdefect calibrate-model DIR --n-images 150 --decide-on model
#   python benchmarks/bench_materials.py --material M --model DIR ...
#
# Usage: bash benchmarks/gpu_train_round.sh OUTDIR [N_IMAGES] [STEPS] [SEED] [WORKERS] [MODELS...]
# (defaults: 1200 images, 10000 steps of batch 128, seed 19, 3 workers per detector, all four).
set -u
out=${1:?usage: gpu_train_round.sh OUTDIR [N_IMAGES] [STEPS] [SEED] [WORKERS] [MODELS...]}
n_images=${2:-1200}
steps=${3:-10000}
seed=${4:-19}
workers=${5:-3}
shift $(( $# < 5 ? $# : 5 ))
models=${*:-mos2-default ws2-default wse2-default mose2-default}
py=${PYTHON:-python3}
device=${DEVICE:-cuda}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
work=$(mktemp -d)

train_one() {
  local name=$1 material flags
  case $name in
    mos2-default) material=MoS2; flags="" ;;
    mos2-alloy) material=MoS2; flags="--host-units" ;;
    ws2-default) material=WS2; flags="--host-units" ;;
    wse2-default) material=WSe2; flags="--host-units" ;;
    mose2-default) material=MoSe2; flags="--host-units --host-level truth" ;;
    *) echo "unknown model $name" >&2; return 2 ;;
  esac
  local noise=$name
  [ "$name" = mos2-alloy ] && noise=mos2-default
  # shellcheck disable=SC2086
  "$py" -m napari_atomdefect.cli train-detector --material "$material" --noise "$noise" \
    --init "$name" --n-images "$n_images" --val-images 60 --steps "$steps" --batch-size 128 \
    --seed "$seed" --device "$device" --threads 1 --workers "$workers" $flags \
    --out "$work/$name" > "$out/$name.log" 2>&1 \
    && tar -C "$work" -cf "$out/$name.tar" "$name"
  echo "$name: exit $? after $SECONDS s"
}

for name in $models; do
  train_one "$name" &
done
wait
rm -rf "$work"

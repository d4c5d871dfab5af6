# Quick start:  make run   (napari with the sample where a display exists, else a headless run)
#               make test  (install everything and run the whole test suite)
# Both are idempotent. Torch is pinned here, in the same pip command, not in pyproject.toml.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_PIN ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench clean bundled-models

$(STAMP): pyproject.toml
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  echo "python3 -m venv failed; installing python3-venv"; \
	  apt-get install -y python3-venv >/dev/null && $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_PIN)" -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

run: install
	@if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ]; then \
	  $(BIN)/atomdefect view; \
	else \
	  echo "No display found: running the pipeline headless on the built-in sample."; \
	  $(BIN)/atomdefect demo --out results; \
	fi

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check src tests benchmarks docs
	$(BIN)/python -m mypy

bench: install
	$(BIN)/python benchmarks/bench_lattice.py

# The bundled models, from scratch (CPU: ~2 h for all four; REAL: the Nion WS2/WSe2 images).
# Stage 1 of WS2 and WSe2 learns from their real cells (the paper's recipe); MoSe2 carries the
# real images' measured noise onto simulated cells; MoS2 keeps its stage 1. Every stage 2 starts
# from the MoS2 detector then bundled, so the new detectors are written to build/ first.
REAL ?= ../shared/data/real
AD := $(BIN)/atomdefect
bundled-models: install
	$(AD) train-noise --material WS2 --real $(REAL)/Partially_converted_* --real-mode cells \
	  --init mos2-default --n-images 40 --steps 500 --seed 0 --out build/ws2-noise
	$(AD) train-noise --material WSe2 --real $(REAL)/Fully_converted_* --real-mode cells \
	  --init mos2-default --n-images 40 --steps 500 --seed 0 --out build/wse2-noise
	$(AD) train-noise --material MoSe2 --real $(REAL) --real-mode noise --real-material WS2 \
	  --init mos2-default --n-images 40 --steps 500 --seed 0 --out build/mose2-noise
	for m in WS2 MoS2 WSe2 MoSe2; do l=$$(echo $$m | tr A-Z a-z); \
	  noise=build/$$l-noise; [ $$m = MoS2 ] && noise=mos2-default; \
	  $(AD) train-detector --material $$m --noise $$noise --init mos2-default --n-images 320 \
	    --val-images 40 --steps 5000 --seed 0 --out build/stage2/$$l-default || exit 1; done
	# MoS2 (the model judged against multislice images) takes a second round on fresh images.
	$(AD) train-detector --material MoS2 --noise mos2-default --init build/stage2/mos2-default \
	  --n-images 320 --val-images 40 --steps 3000 --seed 1 --out build/stage2/mos2-default-r2
	rm -rf build/stage2/mos2-default && mv build/stage2/mos2-default-r2 build/stage2/mos2-default
	for l in ws2 mos2 wse2 mose2; do rm -rf src/napari_atomdefect/weights/$$l-default && \
	  cp -r build/stage2/$$l-default src/napari_atomdefect/weights/ && \
	  ATOMDEFECT_WRITE_BUNDLED=1 $(AD) calibrate-model $$l-default --n-images 150 || exit 1; done
	# Round 3 (fourth session): images with patchy contamination and column-to-column scatter,
	# read after the hollow-site background flattening; each model continues from the one above.
	# (MoS2 keeps round 2: its round 3, calibrated, missed more vacancies at low SNR.)
	for m in WS2 WSe2 MoSe2; do l=$$(echo $$m | tr A-Z a-z); \
	  $(AD) train-detector --material $$m --noise $$l-default --init $$l-default --n-images 200 \
	    --val-images 30 --steps 2000 --seed 2 --out build/stage3/$$l-default || exit 1; done
	for l in ws2 wse2 mose2; do rm -rf src/napari_atomdefect/weights/$$l-default && \
	  cp -r build/stage3/$$l-default src/napari_atomdefect/weights/ && \
	  ATOMDEFECT_WRITE_BUNDLED=1 $(AD) calibrate-model $$l-default --n-images 150 || exit 1; done
	# Round 4 (fifth session): static cross term measured to 200 kV, substituent order
	# asymmetry, the Z-contrast ladder as two more context planes. MoS2 adopted (better on
	# multislice images of other microscopes), deciding on the network's own probabilities.
	$(AD) train-detector --material MoS2 --noise mos2-default --init mos2-default --n-images 200 \
	  --val-images 30 --steps 2000 --seed 4 --out build/stage4/mos2-default
	rm -rf src/napari_atomdefect/weights/mos2-default && \
	  cp -r build/stage4/mos2-default src/napari_atomdefect/weights/ && \
	  ATOMDEFECT_WRITE_BUNDLED=1 $(AD) calibrate-model mos2-default --n-images 150 --decide-on model
	# Round 5 (sixth session): host units — the tiles read against the host chalcogen column
	# found on the image's Z-contrast ladder (core/cells/ladder.py). The bundled weights were
	# trained with the ladder reading of commit d440657 (run `git checkout d440657 -- src` for
	# the training step to reproduce them exactly); detection and calibration use the current
	# reading. (Retrained with the current reading, seed 8, the WSe2 detector was worse on our
	# held-out images — S_Se 0.65 against 0.85 — and was not adopted.)
	for m in WSe2 MoSe2 WS2; do l=$$(echo $$m | tr A-Z a-z); \
	  $(AD) train-detector --material $$m --noise $$l-default --init $$l-default --n-images 280 \
	    --val-images 30 --steps 3000 --seed 7 --host-units --out build/stage7/$$l-default || exit 1; \
	  rm -rf src/napari_atomdefect/weights/$$l-default && \
	  cp -r build/stage7/$$l-default src/napari_atomdefect/weights/ && \
	  ATOMDEFECT_WRITE_BUNDLED=1 $(AD) calibrate-model $$l-default --n-images 150 --decide-on model \
	  || exit 1; done

	# Seventh session: mos2-alloy, the MoS2 detector in host units for S/Se alloys (mos2-default
	# stays the default without an alloying substituent: it is better on O and vacancies).
	$(AD) train-detector --material MoS2 --noise mos2-default --init mos2-default --n-images 280 \
	  --val-images 30 --steps 3000 --seed 9 --host-units --out build/stage9/mos2-alloy
	rm -rf src/napari_atomdefect/weights/mos2-alloy && \
	  cp -r build/stage9/mos2-alloy src/napari_atomdefect/weights/ && \
	  ATOMDEFECT_WRITE_BUNDLED=1 $(AD) calibrate-model mos2-alloy --n-images 150 --decide-on model
	# Round 6 of mos2-default (eleventh session): the S-column constants and Mo contrast
	# re-measured by multislice at a converged potential sampling (docs/physics.md).
	$(AD) train-detector --material MoS2 --noise mos2-default --init mos2-default --n-images 200 \
	  --val-images 30 --steps 2000 --seed 4 --out build/stage6/mos2-default
	rm -rf src/napari_atomdefect/weights/mos2-default && \
	  cp -r build/stage6/mos2-default src/napari_atomdefect/weights/ && \
	  ATOMDEFECT_WRITE_BUNDLED=1 $(AD) calibrate-model mos2-default --n-images 150 --decide-on model
	# Round 12 (twelfth session): Se columns, W contrast and the partner chalcogen's cross term
	# re-measured by multislice (docs/physics.md); WS2, WSe2 and mos2-alloy one more round on
	# them; MoSe2 a longer round (its 2000-step round 12 was not adopted).
	for l in ws2-default wse2-default mos2-alloy; do m=WS2; noise=$$l; \
	  [ $$l = wse2-default ] && m=WSe2; \
	  [ $$l = mos2-alloy ] && m=MoS2 && noise=mos2-default; \
	  $(AD) train-detector --material $$m --noise $$noise --init $$l --n-images 200 \
	    --val-images 30 --steps 2000 --seed 12 --host-units --out build/stage12/$$l || exit 1; \
	  rm -rf src/napari_atomdefect/weights/$$l && cp -r build/stage12/$$l src/napari_atomdefect/weights/ && \
	  ATOMDEFECT_WRITE_BUNDLED=1 $(AD) calibrate-model $$l --n-images 150 --decide-on model \
	  || exit 1; done
	$(AD) train-detector --material MoSe2 --noise mose2-default --init mose2-default \
	  --n-images 280 --val-images 30 --steps 3000 --seed 14 --host-units --out build/stage14/mose2-default
	rm -rf src/napari_atomdefect/weights/mose2-default && \
	  cp -r build/stage14/mose2-default src/napari_atomdefect/weights/ && \
	  ATOMDEFECT_WRITE_BUNDLED=1 $(AD) calibrate-model mose2-default --n-images 150 --decide-on model
	# Round 15 (thirteenth session): WSe2's round-12 detector averaged with one more round
	# trained from it (average-models); MoSe2's training cells in units of their image's true host
	# column (--host-level truth), read with the ladder's metal weight 0.07.
	$(AD) train-detector --material MoSe2 --noise mose2-default --init mose2-default \
	  --n-images 200 --val-images 30 --steps 2000 --seed 15 --host-units --host-level truth \
	  --out build/stage15/mose2-default
	rm -rf src/napari_atomdefect/weights/mose2-default && \
	  cp -r build/stage15/mose2-default src/napari_atomdefect/weights/ && \
	  ATOMDEFECT_WRITE_BUNDLED=1 $(AD) calibrate-model mose2-default --n-images 150 --decide-on model
	$(AD) train-detector --material WSe2 --noise wse2-default --init wse2-default \
	  --n-images 200 --val-images 30 --steps 2000 --seed 15 --host-units \
	  --out build/stage15/wse2-default
	$(AD) average-models wse2-default build/stage15/wse2-default \
	  --out build/stage15/averaged/wse2-default
	rm -rf src/napari_atomdefect/weights/wse2-default && \
	  cp -r build/stage15/averaged/wse2-default src/napari_atomdefect/weights/ && \
	  ATOMDEFECT_WRITE_BUNDLED=1 $(AD) calibrate-model wse2-default --n-images 150 --decide-on model
	# Round 16 (fifteenth session): training images include partly converted alloys (singly
	# and doubly substituted columns in independent proportions, simulate/image.py).
	$(AD) train-detector --material MoS2 --noise mos2-default --init mos2-alloy \
	  --n-images 200 --val-images 30 --steps 2000 --seed 16 --host-units \
	  --out build/stage16/mos2-alloy
	rm -rf src/napari_atomdefect/weights/mos2-alloy && \
	  cp -r build/stage16/mos2-alloy src/napari_atomdefect/weights/
	# (WSe2, MoSe2 and WS2 round 16 were not adopted: docs/benchmarks.md.)
	# Fifteenth session: detection reads uncertain cells twice (mirrored view) and calibration
	# images include partly converted alloys: every calibration refitted on that.
	for l in mos2-default mos2-alloy ws2-default wse2-default mose2-default; do \
	  ATOMDEFECT_WRITE_BUNDLED=1 $(AD) calibrate-model $$l --n-images 150 --decide-on model \
	  || exit 1; done
	# Round 17 (sixteenth session): the side of a singly substituted column follows the converged
	# multislice runs to high angles, the static cross term reaches 0.12 below its line. WSe2
	# adopted (better on our images and on the real fully converted one); MoS2, WS2 and MoSe2
	# round 17 were not (docs/benchmarks.md).
	$(AD) train-detector --material WSe2 --noise wse2-default --init wse2-default \
	  --n-images 200 --val-images 30 --steps 2000 --seed 17 --host-units \
	  --out build/stage17/wse2-default
	rm -rf src/napari_atomdefect/weights/wse2-default && \
	  cp -r build/stage17/wse2-default src/napari_atomdefect/weights/ && \
	  ATOMDEFECT_WRITE_BUNDLED=1 $(AD) calibrate-model wse2-default --n-images 150 --decide-on model
	# Round 19 (eighteenth session), on a GPU machine (a lent H200: ~7 min with the three others of
	# benchmarks/gpu_train_round.sh): five times the images and steps of a CPU round, averaged
	# with round 12 for WS2 (round 19 alone misread Janus WSSe layers); MoS2, mos2-alloy, WSe2
	# and MoSe2 round 19 were not adopted (docs/benchmarks.md). On a CPU drop --device cuda.
	$(AD) train-detector --material WS2 --noise ws2-default --init ws2-default --n-images 1000 \
	  --val-images 60 --steps 10000 --batch-size 128 --seed 19 --device cuda --threads 1 \
	  --workers 3 --host-units --out build/stage19/ws2-default
	$(AD) average-models ws2-default build/stage19/ws2-default \
	  --out build/stage19/averaged/ws2-default
	rm -rf src/napari_atomdefect/weights/ws2-default && \
	  cp -r build/stage19/averaged/ws2-default src/napari_atomdefect/weights/ && \
	  ATOMDEFECT_WRITE_BUNDLED=1 $(AD) calibrate-model ws2-default --n-images 150 --decide-on model
	# Round 20 (twentieth session, CPU): training and calibration microscopes at every common
	# voltage (120 kV added) and any between 60 and 300 kV. MoSe2 adopted (multislice S alloys
	# read right); MoS2, WS2, WSe2 and mos2-alloy round 20 were not (docs/benchmarks.md).
	$(AD) train-detector --material MoSe2 --noise mose2-default --init mose2-default \
	  --n-images 300 --val-images 30 --steps 3000 --seed 20 --host-units --host-level truth \
	  --workers 2 --threads 2 --out build/stage20/mose2-default
	rm -rf src/napari_atomdefect/weights/mose2-default && \
	  cp -r build/stage20/mose2-default src/napari_atomdefect/weights/ && \
	  ATOMDEFECT_WRITE_BUNDLED=1 $(AD) calibrate-model mose2-default --n-images 150 --decide-on model
	# Round 43 (forty-second session, CPU, ~10 min a round): a fifth of the WSe2 training
	# microscopes follow the incoherent Z-contrast rule (--incoherent-share; independent
	# simulators' WSe2 reaches W/Se2 contrasts past the multislice-grounded ones); three sibling
	# rounds from round 17, averaged (docs/benchmarks.md#forty-second-session).
	for s in 43 44 45; do $(AD) train-detector --material WSe2 --noise wse2-default \
	  --init wse2-default --n-images 200 --val-images 30 --steps 2000 --seed $$s --host-units \
	  --incoherent-share 0.2 --workers 2 --out build/stage43/wse2-$$s || exit 1; done
	$(AD) average-models build/stage43/wse2-43 build/stage43/wse2-44 build/stage43/wse2-45 \
	  --out build/stage43/averaged/wse2-default
	rm -rf src/napari_atomdefect/weights/wse2-default && \
	  cp -r build/stage43/averaged/wse2-default src/napari_atomdefect/weights/ && \
	  ATOMDEFECT_WRITE_BUNDLED=1 $(AD) calibrate-model wse2-default --n-images 150 --decide-on model

clean:
	rm -rf $(VENV) results .pytest_cache

#!/usr/bin/env bash
# The one command for a lent GPU machine (issue #15): install what its image lacks from .device/ (RDKit wheel
# for its Python 3.12; Hydra, OmegaConf, antlr4, crepes as pure-Python folders), then pretrain within MINUTES.
# Prepare .device/ here first (docs/pretraining.md, "On a GPU machine"); results land in $OUT.
set -uo pipefail
MINUTES=${MINUTES:-8}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .device/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/.device/py:$PWD PYTHONUNBUFFERED=1
nvidia-smi -L; nproc
EXTRA=${EXTRA-data/pretrain/moleculenet_smiles.csv.gz}   # EXTRA= : MOSES only (the MoleculeNet molecules featurize slowly)
python3 bench/gpu_pretrain.py --corpus .device/moses_800k.csv.gz $EXTRA --out "$OUT" --minutes "$MINUTES" \
    2>&1 | tee "$OUT/console.log"

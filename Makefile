# molgnn: the two commands a fresh machine needs are `make demo` and `make test`.
PY ?= python
PIP ?= $(PY) -m pip

.PHONY: setup demo test test-fast lint bench distill-encoder

setup:  ## install torch (local CPU 2.13.0 build first, so no CUDA build is pulled) and molgnn with dev extras
	$(PIP) install -q "torch==2.13.0"
	$(PIP) install -q -e ".[dev]"
	$(PIP) install -q --no-deps "minimol==1.3.5"  # MiniMol's weights only (encoder=minimol); --no-deps: no graphium

demo: setup  ## train the default GNN on bundled ESOL (scaffold split) and print test metrics
	molgnn-train hydra.run.dir=outputs/demo
	@$(PY) -c "import json; m = json.load(open('outputs/demo/metrics.json')); print('ESOL scaffold test:', {k: round(v, 3) for k, v in m.items() if k.startswith('test/')})"

TEST_WORKERS ?= 2
test: setup  ## the whole suite, slow tests included (CI runs exactly this); 2 pytest-xdist workers, one thread each
	$(PY) -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) tests

test-fast:
	$(PY) -m pytest -q -n $(TEST_WORKERS) -m "not slow" tests

lint:
	ruff check molgnn tests bench
	ruff format --check molgnn tests bench

SEED ?= 0
# EPOCHS=10 is the default encoder's recipe; EPOCHS=5 (with READOUT=sum: folder $(DISTILL)/pt_s$(SEED)) an
# earlier one; bench/results/distill.md
EPOCHS ?= 10
# READOUT=sum+mean (pretext heads read both poolings) is the default encoder's recipe since 2026-12-08 (run folder
# $(DISTILL)/pt10sm_s$(SEED)); READOUT=sum the previous default's (folder $(DISTILL)/pt10_s$(SEED))
READOUT ?= sum+mean
DISTILL := outputs/distill
DISTILL_RUN ?= $(DISTILL)/pt$(if $(filter 5,$(EPOCHS)),,$(EPOCHS))$(if $(filter sum,$(READOUT)),,sm)_s$(SEED)
# an interrupted run resumes from its last checkpoint when the same command is run again
DISTILL_RESUME = $(if $(wildcard $(DISTILL_RUN)/checkpoints/last.ckpt),ckpt_path=$(DISTILL_RUN)/checkpoints/last.ckpt)
distill-encoder: setup  ## pretrain a D-MPNN on the bundled 105k corpus distilling MiniMol (+ descriptors, masking); ~90 min on 2 cores
	test -f $(DISTILL)/mixed.csv.gz || $(PY) data/pretrain/make_corpus.py data/pretrain/moses_50k.csv.gz \
		data/pretrain/moleculenet_smiles.csv.gz -o $(DISTILL)/mixed.csv.gz
	test -f $(DISTILL)/minimol_teacher.npy || molgnn-embed input=$(DISTILL)/mixed.csv.gz smiles_col=SMILES encoder=minimol \
		output=$(DISTILL)/minimol_teacher.npy hydra.run.dir=$(DISTILL)/embed
	molgnn-pretrain pretrain=distill data.path=$(DISTILL)/mixed.csv.gz data.name=mixed105k \
		data.teacher=$(DISTILL)/minimol_teacher.npy seed=$(SEED) trainer.max_epochs=$(EPOCHS) checkpoint_every_n_steps=500 \
		trainer.enable_progress_bar=false encoder.readout=$(READOUT) hydra.run.dir=$(DISTILL_RUN) $(DISTILL_RESUME)
	@echo "encoder: $(DISTILL_RUN)/encoder.pt"

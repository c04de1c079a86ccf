"""LightningModules: pretraining objectives and property regression (no file I/O, no RDKit)."""

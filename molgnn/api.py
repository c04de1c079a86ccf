"""The Python API for notebooks: ``molgnn.load`` (a trained model -> ``Model``) and ``molgnn.train``.

Nothing heavy is imported here at module level (``import molgnn`` stays fast and does not import torch):
the functions import what they need when called. ``Model.predict`` reuses ``molgnn.predict``'s
featurization, inference and output-frame functions, so its frame has the columns and numbers that
``molgnn-predict`` writes for the same input; ``molgnn.train`` runs the ``molgnn-train`` job.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


class Model:
    """One trained model file (molgnn-train checkpoint or molgnn-bundle), an ensemble of several, or an
    encoder file (embeddings only).

    ``models``: the loaded members (``molgnn.predictor.Predictor``, eval mode) on ``device``; ``encoder``:
    the encoder ``embed`` uses (the first member's, or the encoder file's when ``models`` is empty).
    """

    def __init__(self, models: list, device: str = "cpu", encoder=None, path: str | None = None):
        import torch

        self.device = torch.device(device)
        self.models = [m.to(self.device) for m in models]
        self.encoder = (encoder if encoder is not None else self.models[0].encoder).to(self.device).eval()
        self.path = path or (self.models[0].path if self.models else None)

    @property
    def targets(self) -> list[str]:
        """Names of the predicted targets (one per output value; ``<head>/<target>`` when heads share one);
        empty for an encoder file."""
        return list(self.models[0].columns) if self.models else []

    @property
    def spec(self):
        """The featurizer spec (``molgnn.featurize.spec.FeaturizerSpec``) every member was trained with."""
        return self.encoder.spec

    def predict(
        self,
        smiles,
        smiles_col: str = "smiles",
        interval_level: float | None = None,
        uncertainty: bool = True,
        batch_size: int | None = None,
        num_workers: int = 0,
    ):
        """Predict every row -> pandas DataFrame with one row per input row, in order (a Series' or
        DataFrame's index is kept), and the columns ``molgnn-predict`` writes: the input's columns (a
        ``smiles`` column for a list or Series), the targets (ensembles: ``<t>_mean``, ``<t>_std``;
        calibrated models also ``<t>_std``, ``<t>_lower``, ``<t>_upper``, ``domain_score``,
        ``domain_similarity``, ``in_domain``), then ``valid`` and ``error`` (why a SMILES is invalid; its
        prediction columns are NaN). ``smiles``: list of SMILES, pandas Series, or DataFrame with the SMILES
        in ``smiles_col``. ``interval_level``: conformal interval level (default: the calibrated one);
        ``uncertainty=False``: target columns only. ``num_workers`` > 0 featurizes (and on CPU predicts) in
        worker processes.
        """
        import numpy as np

        from molgnn.errors import MolgnnError
        from molgnn.predict import Forward, featurized_chunks, output_frame, predict_jobs
        from molgnn.uncertainty.outputs import EnsembleUncertainty, output_columns

        if not self.models:
            raise MolgnnError(
                f"{self.path}: an encoder file has no property heads to predict with; use "
                ".embed(smiles), or train heads: molgnn-train encoder=pretrained encoder.path=..."
            )
        frame, smiles_col = _input_frame(smiles, smiles_col)
        if interval_level is not None and not 0.0 < float(interval_level) < 1.0:
            raise MolgnnError(f"interval_level={interval_level}: must be in (0, 1), e.g. 0.9")
        batch_size = batch_size or (1024 if self.device.type == "cuda" else 128)
        uq = EnsembleUncertainty([m.calibration if uncertainty else None for m in self.models])
        pred_cols = output_columns(self.targets, len(self.models) > 1, uq.calibrated)
        desc_names = sorted({n for m in self.models for n in m.descriptor_names})
        # molgnn-predict reads every cell as text with empty cells as "": featurize the same strings
        text = frame[[smiles_col]].reset_index(drop=True).fillna("").astype(str)
        values, valid, errors = np.zeros((0, len(pred_cols)), np.float32), np.zeros(0, bool), []
        chunks = iter([(0, text)] if len(frame) else [])
        # one chunk; predicted inside the loop, while the worker pool (num_workers > 0) is still open
        forward = Forward(self.models, batch_size, self.device, desc_names, uq, interval_level)
        for _, _, jobs in featurized_chunks(
            chunks, smiles_col, self.spec, desc_names, num_workers, fingerprints=uq.calibrated,
            forward=forward,  # on CPU the workers also predict their jobs
        ):  # fmt: skip
            values, valid, errors = predict_jobs(forward, jobs)
        out = output_frame(frame, pred_cols, values, valid, errors)
        out.index = frame.index
        return out

    def embed(self, smiles, batch_size: int = 256, num_workers: int = 0):
        """Encoder embeddings (the first member's encoder) -> float32 numpy array [N, d], one row per SMILES
        in order; NaN rows for invalid SMILES. ``smiles``: list of SMILES or pandas Series."""
        from molgnn.transfer import embed_smiles

        return embed_smiles(
            self.encoder, list(smiles), batch_size=batch_size, num_workers=num_workers, device=self.device
        ).values

    def __repr__(self) -> str:
        kind = f"ensemble of {len(self.models)}" if len(self.models) > 1 else self.path
        return f"molgnn.Model({kind}; targets={self.targets})"


def _input_frame(smiles, smiles_col: str):
    """(frame, SMILES column): a DataFrame as given (its ``smiles_col`` must exist); a Series or list ->
    one ``smiles`` column (a Series keeps its index)."""
    import pandas as pd

    from molgnn.errors import MolgnnError

    if isinstance(smiles, pd.DataFrame):
        if smiles_col not in smiles.columns:
            raise MolgnnError(
                f"no column {smiles_col!r} (smiles_col); columns are: "
                f"{', '.join(map(str, smiles.columns[:20]))}"
            )
        return smiles, smiles_col
    if isinstance(smiles, str):
        raise MolgnnError(
            "predict takes a list of SMILES, a pandas Series or a DataFrame, not one string; "
            f"use [{smiles!r}]"
        )
    if isinstance(smiles, pd.Series):
        return pd.DataFrame({"smiles": smiles.to_numpy(dtype=object)}, index=smiles.index), "smiles"
    return pd.DataFrame({"smiles": list(smiles)}, dtype=object), "smiles"


def load(path: str | Path | Sequence[str | Path], device: str = "cpu") -> Model:
    """Any molgnn file -> ``Model``, dispatched on the file's kind: a molgnn-train checkpoint (``.ckpt``), a
    molgnn-bundle file, an ensemble file, a Chemprop model, or a list of them (an ensemble: same featurizer
    spec and targets); an encoder file (``encoder.pt``, molgnn-pretrain output) gives a ``Model`` that embeds
    but has no heads. Raises ``molgnn.errors.CheckpointError`` for an unusable file.
    """
    import molgnn.cli  # noqa: F401  (sets the thread defaults before torch is first imported)
    from molgnn.checkpoint import load_encoder
    from molgnn.predictor import load_ensemble
    from molgnn.weights import read_weights

    paths = [path] if isinstance(path, (str, Path)) else list(path)
    if len(paths) == 1:
        weights = read_weights(paths[0])
        if weights.kind in ("encoder", "pretrain"):
            return Model([], device=device, encoder=load_encoder(weights), path=str(paths[0]))
    return Model(load_ensemble(paths), device=device)


def train(overrides: Sequence[str] = (), output_dir: str | Path | None = None) -> dict[str, Any]:
    """Run ``molgnn-train`` from Python: the ``train`` config composed with ``overrides`` (the command
    line's ``key=value`` strings, e.g. ``["data=esol", "trainer.max_epochs=5"]``), trained into
    ``output_dir`` (default: ``paths.output_dir`` when overridden, else ``hydra.run.dir``, i.e.
    ``outputs/train/<time>``). Returns the metrics dict (``val/rmse``, ``test/rmse``, ...); the run
    directory holds ``checkpoints/best.ckpt``. Bad overrides raise Hydra's / molgnn's exception."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf, open_dict

    from molgnn.cli import CONF_DIR, _check_no_missing  # also registers the molgnn_root resolver
    from molgnn.cli.train import train as train_job

    overrides = list(overrides)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            cfg = compose("train", overrides=overrides, return_hydra_config=True)
    finally:
        GlobalHydra.instance().clear()
    if output_dir is None:
        own = any(o.lstrip("+~").startswith("paths.output_dir=") for o in overrides)
        output_dir = cfg.paths.output_dir if own else OmegaConf.select(cfg, "hydra.run.dir")
    with open_dict(cfg):
        del cfg["hydra"]  # no Hydra runtime here: the job sees the config alone, as in a composed test
        cfg.paths.output_dir = str(output_dir)  # before anything resolves ${hydra:runtime.output_dir}
    _check_no_missing(cfg)
    return train_job(cfg, output_dir)

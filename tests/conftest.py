"""Shared fixtures: small committed data files and a Hydra composer for the project's configs."""

from __future__ import annotations

import os
from pathlib import Path

# Under pytest-xdist (`make test` runs 2 workers), each worker computes on one thread and idles passively, so two
# workers share 2 cores without spinning against each other; a single process keeps 2 threads.
_XDIST_WORKER = "PYTEST_XDIST_WORKER" in os.environ
if _XDIST_WORKER:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads its OpenMP runtime

import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).resolve().parents[1]

torch.set_num_threads(1 if _XDIST_WORKER else min(2, os.cpu_count() or 1))


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture
def compose(tmp_path):
    """compose(config_name, overrides) -> DictConfig with paths pointed into tmp_path."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    import molgnn.cli  # noqa: F401  (registers the molgnn_root resolver)

    def _compose(name: str, overrides: list[str] | None = None):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            return hydra_compose(
                config_name=name,
                overrides=[
                    f"paths.cache_dir={tmp_path / 'cache'}",
                    f"paths.output_dir={tmp_path / 'out'}",
                    *(overrides or []),
                ],
                return_hydra_config=False,
            )

    return _compose


# A labeled run on the 120 committed ESOL rows, random split, small head, quiet (any encoder).
ESOL_CSV = ["data=csv", f"data.path={FIXTURES / 'esol_small.csv'}", "data.target_cols=[logS]", "split=random"]
ESOL_CSV_QUIET = [
    *ESOL_CSV,
    "head.hidden_dim=16",
    "~callbacks.rich_progress_bar",
    "~callbacks.lr_monitor",
    "logger=none",
]
# A tiny labeled run: D-MPNN (32 wide, 2 layers), 1 epoch on those rows.
TINY_ESOL = [*ESOL_CSV_QUIET, "trainer.max_epochs=1", "encoder.hidden_dim=32", "encoder.num_layers=2"]


def _compose_train(overrides: list[str], cache: Path, output_dir: Path | str = "unused"):
    """The train config with the given overrides, its feature cache in ``cache``."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    import molgnn.cli  # noqa: F401  (registers the molgnn_root resolver)

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("train", [f"paths.cache_dir={cache}", f"paths.output_dir={output_dir}", *overrides])


@pytest.fixture(scope="session")
def train_tiny(tmp_path_factory):
    """train_tiny(name, *overrides) -> run directory of a TINY_ESOL molgnn-train run (checkpoints/best.ckpt,
    metrics.json, test_predictions.csv, ...) with the extra overrides applied."""
    from molgnn.cli.train import train

    def _train(name: str, *overrides: str) -> Path:
        tmp = tmp_path_factory.mktemp(name)
        train(_compose_train([*TINY_ESOL, *overrides], tmp / "cache", tmp / "out"), tmp / "out")
        return tmp / "out"

    return _train


def fit_objective(objective, encoder, batch, steps: int, lr: float = 1e-2) -> tuple[list[float], dict]:
    """Adam on encoder + objective for ``steps`` steps of ``objective(encoder, batch)`` -> (losses, last logs)."""
    opt = torch.optim.Adam([*encoder.parameters(), *objective.parameters()], lr=lr)
    losses, logs = [], {}
    for _ in range(steps):
        loss, logs = objective(encoder, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, logs


TRANSFER_QUIET = [
    "~callbacks.rich_progress_bar",
    "~callbacks.lr_monitor",
    "logger=none",
    "head.hidden_dim=16",
]


@pytest.fixture(scope="session")
def transfer_runs(tmp_path_factory):
    """A tiny GINE encoder exported as encoder.pt, and molgnn-train runs on it (each trained once per session):
    {"dir", "encoder", "frozen", "frozen_pre", "second", "preset", "finetuned", "l2sp", "layers1", "gradual"}."""
    from hydra.utils import instantiate

    from molgnn.checkpoint import export_encoder
    from molgnn.cli.train import train

    tmp = tmp_path_factory.mktemp("transfer")
    cfg = _compose_train(
        ["encoder=gine", "encoder.hidden_dim=32", "encoder.num_layers=2", "encoder.dropout=0.0"],
        tmp / "cache",
    )
    torch.manual_seed(0)
    encoder = instantiate(cfg.encoder)
    export_encoder(encoder, tmp / "encoder.pt", pretraining={"objective": "none (test)"})
    frame = pd.read_csv(FIXTURES / "esol_small.csv")
    frame.assign(y2=2 * frame.logS + 1).drop(columns="logS").to_csv(tmp / "second.csv", index=False)
    # monitor=null: the checkpoints hold the final epoch (Lightning writes last.ckpt only with a new best)
    base = [
        "encoder=pretrained",
        f"encoder.path={tmp / 'encoder.pt'}",
        "data=csv",
        "split=random",
        "callbacks.model_checkpoint.monitor=null",
        *TRANSFER_QUIET,
    ]
    first = [f"data.path={FIXTURES / 'esol_small.csv'}", "data.target_cols=[logS]", "task.name=solubility"]
    jobs = {
        "frozen": [*first, "task.freeze_encoder=true", "trainer.max_epochs=2"],
        "frozen_pre": [
            *first,
            "task.freeze_encoder=true",
            "++task.precompute_embeddings=true",
            "trainer.max_epochs=2",
        ],
        "second": [
            f"data.path={tmp / 'second.csv'}",
            "data.target_cols=[y2]",
            "task.name=second",
            "task.freeze_encoder=true",
            "++task.precompute_embeddings=true",
            "trainer.max_epochs=2",
        ],
        "preset": [*first, "experiment=frozen_head", "head.hidden_dim=16", "trainer.max_epochs=2"],
        "finetuned": [*first, "trainer.max_epochs=1"],
        "l2sp": [*first, "task.l2sp=1000.0", "trainer.max_epochs=1"],
        "layers1": [*first, "++task.freeze_layers=1", "trainer.max_epochs=2"],
        "gradual": [*first, "++task.unfreeze_every=1", "trainer.max_epochs=2"],
    }
    out = {"dir": tmp, "encoder": tmp / "encoder.pt"}
    for name, overrides in jobs.items():
        out[name] = train(_compose_train([*base, *overrides], tmp / "cache"), tmp / name)
    return out


# molgnn-predict's models and input (test_predict.py, test_predict_models.py)
PREDICT_INVALID = ["not_a_smiles", "", "C1CC", "c1ccccc1(", "[Xx]"]
PREDICT_FAST = dict(progress=False, num_workers=0)  # predict_file kwargs: no bar, no worker pool
# models of the predict fixtures are uncalibrated (uncertainty=none); calibrated outputs: test_uncertainty_predict.py
PREDICT_PLAIN = "uncertainty=none"
# the prediction columns of a calibrated ESOL model (uncertainty=distance): value, spread, interval, domain
CALIBRATED_COLUMNS = [
    "logS",
    "logS_std",
    "logS_lower",
    "logS_upper",
    "domain_score",
    "domain_similarity",
    "in_domain",
]


def read_csv_out(path: Path) -> pd.DataFrame:
    """A predictions CSV of the ESOL models as written: ids/SMILES/errors as text, empty logS as NaN."""
    return pd.read_csv(
        path, dtype={"id": str, "smiles": str, "error": str}, keep_default_na=False, na_values={"logS": [""]}
    )


def write_smi(path: Path, smiles, ids=None) -> Path:
    """A .smi file: one `SMILES [id]` line per molecule."""
    lines = [str(s) for s in smiles] if ids is None else [f"{s} {i}" for s, i in zip(smiles, ids)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="session")
def predict_run(train_tiny) -> Path:
    """A tiny molgnn-train run (D-MPNN, 1 epoch on 120 ESOL rows): checkpoints/best.ckpt + test predictions."""
    return train_tiny("train", "uncertainty=none")


@pytest.fixture(scope="session")
def predict_ckpt(predict_run) -> Path:
    return predict_run / "checkpoints" / "best.ckpt"


@pytest.fixture(scope="session")
def predict_ckpt2(predict_ckpt, tmp_path_factory) -> Path:
    """A second model: same encoder, head weights perturbed (a different member for ensembles/bundles)."""
    blob = torch.load(predict_ckpt, weights_only=True)
    gen = torch.Generator().manual_seed(1)
    for key, value in blob["state_dict"].items():
        if key.startswith("head.") and value.is_floating_point():
            blob["state_dict"][key] = value + 0.3 * torch.randn(value.shape, generator=gen)
    path = tmp_path_factory.mktemp("ckpt2") / "second.ckpt"
    torch.save(blob, path)
    return path


@pytest.fixture(scope="session")
def predict_table(tmp_path_factory) -> Path:
    """ESOL rows with invalid SMILES mixed in, and an id column carried through."""
    frame = pd.read_csv(FIXTURES / "esol_small.csv", dtype=str, keep_default_na=False).head(60)
    rows = frame["smiles"].tolist()
    for i, bad in enumerate(PREDICT_INVALID):
        rows.insert(7 + 11 * i, bad)
    path = tmp_path_factory.mktemp("in") / "mols.csv"
    pd.DataFrame({"id": [f"m{i}" for i in range(len(rows))], "smiles": rows}).to_csv(path, index=False)
    return path

"""molgnn-diagnose: per-layer oversmoothing diagnostics of any encoder on a SMILES file; also written at the
end of every ``molgnn-train`` run (``diagnostics.json`` + ``diagnostics.png`` for validation molecules).

    molgnn-diagnose ckpt_path=best.ckpt input.path=mols.csv         (model, bundle or encoder file)
    molgnn-diagnose encoder=minimol input.path=mols.smi              (any encoder config: published ones too)
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig

from molgnn.chem.parse import ParseFailure
from molgnn.cli import CONF_DIR, config_errors_as_one_line, user_errors_as_one_line
from molgnn.cli.embed import read_smiles_ids
from molgnn.cli.report import write_json
from molgnn.encoders import make_encoder
from molgnn.errors import MolgnnError
from molgnn.featurize.graph import smiles_to_graph
from molgnn.tasks.diagnose import diagnose

log = logging.getLogger("molgnn.diagnose")
PLOTTED = ("relative_dirichlet_energy", "node_cosine", "node_effective_rank", "graph_effective_rank")


def plot_diagnostics(record: dict, path: Path, title: str) -> None:
    """One panel per measure in ``PLOTTED``, value against layer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(PLOTTED), figsize=(4 * len(PLOTTED), 3.4))
    layers = [row["layer"] for row in record["layers"]]
    for ax, key in zip(axes, PLOTTED):
        ax.plot(layers, [row[key] for row in record["layers"]], "o-")
        ax.set(xlabel="layer (0 = input)", title=key.replace("_", " "))
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_diagnostics(record: dict, out_dir: Path, title: str) -> None:
    """``diagnostics.json`` and ``diagnostics.png`` in ``out_dir``."""
    write_json(record, out_dir / "diagnostics.json")
    plot_diagnostics(record, out_dir / "diagnostics.png", title)


SHORT = {
    "layer": "layer",
    "dim": "dim",
    "relative_dirichlet_energy": "rel_energy",
    "node_cosine": "node_cos",
    "node_effective_rank": "node_erank",
    "graph_effective_rank": "graph_erank",
    "dirichlet_energy": "energy",
    "graph_cosine": "graph_cos",
}


def format_table(record: dict) -> str:
    """The per-layer measures as an aligned text table (column names shortened, see ``SHORT``)."""
    lines = ["  ".join(f"{name:>11}" for name in SHORT.values())]
    for row in record["layers"]:
        lines.append(
            "  ".join(
                f"{row[c]:>11.4g}"
                if isinstance(row[c], float) and math.isfinite(row[c])
                else f"{row[c]!s:>11}"
                for c in SHORT
            )
        )
    return "\n".join(lines)


def diagnose_run(task, datamodule, out_dir: Path, max_molecules: int) -> dict:
    """After training: diagnostics of the trained encoder on (a sample of) the validation molecules; returns
    the headline figures for metrics.json (``diagnostics/...``)."""
    if max_molecules <= 0 or len(datamodule.datasets["valid"]) == 0:
        return {}
    record = diagnose(task.encoder, datamodule.datasets["valid"], max_molecules)
    write_diagnostics(record, out_dir, f"{record['encoder']} on {record['molecules']} validation molecules")
    return {f"diagnostics/{k}": v for k, v in record["summary"].items()}


def _encoder(cfg: DictConfig):
    if cfg.get("ckpt_path"):
        return make_encoder(path=cfg.ckpt_path)
    if cfg.get("encoder"):
        return instantiate(cfg.encoder)
    raise MolgnnError("no encoder: give ckpt_path=<model .ckpt | bundle | encoder.pt> or encoder=<config>")


@config_errors_as_one_line("molgnn-diagnose")
@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="diagnose")
@user_errors_as_one_line("molgnn-diagnose")
def main(cfg: DictConfig) -> None:
    encoder = _encoder(cfg)
    smiles, _ = read_smiles_ids(cfg.input.path, cfg.input.smiles_col, None)
    graphs, bad = [], []
    for row, s in enumerate(smiles):
        g = smiles_to_graph(s, encoder.spec)
        (bad.append(f"row {row}: {g.reason}") if isinstance(g, ParseFailure) else graphs.append(g))
    if bad:
        log.warning("%s: %d invalid rows left out: %s", cfg.input.path, len(bad), "; ".join(bad[:5]))
    if not graphs:
        raise MolgnnError(f"{cfg.input.path}: no valid SMILES in column {cfg.input.smiles_col!r}")
    record = diagnose(encoder, graphs, cfg.max_molecules, cfg.seed)
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    write_diagnostics(record, out_dir, f"{record['encoder']} on {record['molecules']} molecules")
    print(format_table(record))
    log.info("diagnostics of %d molecules -> %s", record["molecules"], out_dir / "diagnostics.json")


if __name__ == "__main__":
    main()

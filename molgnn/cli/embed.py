"""molgnn-embed: molecule embeddings of a SMILES file, one row per input row in order (invalid rows marked)."""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import numpy as np
import pandas as pd
from hydra.utils import instantiate
from omegaconf import DictConfig

from molgnn.encoders import make_encoder
from molgnn.cli import CONF_DIR, config_errors_as_one_line, user_errors_as_one_line
from molgnn.data.table import read_frame, require_columns, table_format
from molgnn.errors import MolgnnError
from molgnn.transfer import Embeddings, embed_smiles

log = logging.getLogger("molgnn.embed")


def read_smiles_ids(path: str | Path, smiles_col: str, id_col: str | None) -> tuple[list[str], list[str]]:
    """SMILES and ids of every row (ids: ``id_col``, else an ``id`` column, else the 0-based row)."""
    frame = read_frame(path)
    if table_format(Path(path)) in ("smi", "txt"):
        smiles_col = "smiles"
    require_columns(frame, path, {"smiles_col": smiles_col, **({"id_col": id_col} if id_col else {})})
    col = id_col or ("id" if "id" in frame.columns and (frame["id"] != "").any() else None)
    ids = frame[col].astype(str).tolist() if col else [str(i) for i in range(len(frame))]
    return frame[smiles_col].tolist(), ids


def write_embeddings(emb: Embeddings, ids: list[str], output: str | Path) -> list[Path]:
    """``.npy`` (float32 [R, d], NaN rows where invalid) + ``<stem>.ids.csv`` (row, id, valid, reason), or
    one ``.parquet`` with those columns and ``embedding`` (list<float32>[d], null where invalid)."""
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = pd.DataFrame(
        {
            "row": np.arange(len(ids)),
            "id": ids,
            "valid": [r not in emb.failures for r in range(len(ids))],
            "reason": [emb.failures.get(r, "") for r in range(len(ids))],
        }
    )
    if out.suffix == ".npy":
        np.save(out, emb.values)
        ids_path = out.with_suffix(".ids.csv")
        rows.to_csv(ids_path, index=False)
        return [out, ids_path]
    if out.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        dim = emb.values.shape[1]
        flat = pa.array(emb.values.reshape(-1), type=pa.float32())
        mask = pa.array(~rows.valid.to_numpy())
        column = pa.FixedSizeListArray.from_arrays(flat, dim, mask=mask)
        table = pa.Table.from_pandas(rows, preserve_index=False).append_column("embedding", column)
        pq.write_table(table, out)
        return [out]
    raise MolgnnError(f"output={out}: use a .npy or .parquet file name")


@config_errors_as_one_line("molgnn-embed")
@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="embed")
@user_errors_as_one_line("molgnn-embed")
def main(cfg: DictConfig) -> None:
    if cfg.checkpoint:
        encoder = make_encoder(path=cfg.checkpoint)
    elif cfg.get("encoder"):
        encoder = instantiate(cfg.encoder)
    else:
        raise MolgnnError(
            "no encoder: give checkpoint=<encoder.pt | model .ckpt | bundle> or encoder=<config>"
        )
    if not str(cfg.output).endswith((".npy", ".parquet")):
        raise MolgnnError(f"output={cfg.output}: use a .npy or .parquet file name")
    smiles, ids = read_smiles_ids(cfg.input, cfg.smiles_col, cfg.id_col)
    emb = embed_smiles(encoder, smiles, cfg.batch_size, cfg.featurize_workers, cfg.device)
    written = write_embeddings(emb, ids, cfg.output)
    log.info(
        "%d rows -> %s (%d-d; %d invalid rows marked)",
        len(smiles),
        ", ".join(map(str, written)),
        emb.values.shape[1],
        len(emb.failures),
    )


if __name__ == "__main__":
    main()

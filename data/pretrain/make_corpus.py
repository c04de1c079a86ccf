"""Merge the SMILES of several CSV files into one unlabeled corpus (one column ``SMILES``, gzip).

Each input's SMILES column is the first header among ``smiles`` / ``mol`` (case-insensitive); labels are
dropped. Molecules are deduplicated on RDKit canonical SMILES, in input order; unparsable rows are counted
and left out (the count is printed per file).

    python data/pretrain/make_corpus.py IN.csv[.gz] [IN2 ...] -o OUT.csv.gz
"""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

import pandas as pd
from rdkit import Chem, RDLogger

from molgnn.data.table import check_readable, read_frame
from molgnn.errors import MolgnnError

SMILES_HEADERS = ("smiles", "mol")


def smiles_column(frame: pd.DataFrame, path: Path) -> str:
    for col in frame.columns:
        if col.lower() in SMILES_HEADERS:
            return col
    raise MolgnnError(f"{path}: no SMILES column (looked for {', '.join(SMILES_HEADERS)}; found {list(frame.columns)})")


def main() -> None:
    try:
        merge()
    except MolgnnError as exc:  # unreadable file, no SMILES column: one line, no traceback
        raise SystemExit(f"error: {exc}") from None


def merge() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", type=Path)
    parser.add_argument("-o", "--out", type=Path, required=True)
    args = parser.parse_args()
    RDLogger.DisableLog("rdApp.*")
    seen: dict[str, str] = {}
    for path in args.inputs:
        frame = read_frame(check_readable(path))  # the project's reader: .csv/.tsv(.gz), clear errors
        column = smiles_column(frame, path)
        added = bad = 0
        for smi in frame[column].astype(str):
            mol = Chem.MolFromSmiles(smi)
            if mol is None:
                bad += 1
                continue
            key = Chem.MolToSmiles(mol)
            if key not in seen:
                seen[key], added = smi, added + 1
        print(f"{path}: {len(frame)} rows, {added} new molecules, {bad} unparsable")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".part")
    with gzip.open(tmp, "wt") as fh:
        fh.write("SMILES\n" + "\n".join(seen.values()) + "\n")
    tmp.replace(args.out)
    print(f"{args.out}: {len(seen)} molecules")


if __name__ == "__main__":
    main()

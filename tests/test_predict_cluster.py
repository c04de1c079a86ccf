"""molgnn-predict on a real Dask cluster (molgnn.predict.cluster): a LocalCluster of two worker processes; a
worker killed mid-run loses no row, an interrupted client is resumed without recomputing committed chunks,
and both give the single-process output byte for byte. Also: file sets (a list / a glob -> one output per file)
and the cluster settings' errors."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pandas as pd
import pytest

from molgnn.errors import InputFileError, MolgnnError
from molgnn.predict import cluster_enabled, parts_dir, predict_file

distributed = pytest.importorskip("distributed", reason="the cluster extra: pip install molgnn[cluster]")

pytestmark = pytest.mark.slow
FIXTURES = Path(__file__).parent / "fixtures"
CHUNK = 25  # rows per chunk: the table below is 10 chunks
FAST = dict(progress=False, num_workers=0, chunk_rows=CHUNK)


class Watch(distributed.WorkerPlugin):
    """On each worker: log every chunk task it starts (its key) to ``log``; SIGKILL this worker process when
    it starts chunk ``kill`` (once per test: a marker file)."""

    def __init__(self, log: str, kill: int | None = None):
        self.log, self.kill = log, kill

    def transition(self, key, start, finish, **kwargs):
        if finish != "executing" or "-chunk-" not in str(key):
            return
        with open(self.log, "a") as fh:
            fh.write(f"{key}\n")
        marker = Path(self.log + ".killed")
        if int(str(key).rsplit("-", 1)[1]) == self.kill and not marker.exists():
            marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)


def _started(log: Path) -> list[tuple[str, int]]:
    """(run token, chunk) of every task start in ``log``; keys are molgnn-predict-<run>-<file>-chunk-<k>."""
    keys = log.read_text().split() if log.exists() else []
    return [(key.split("-")[2], int(key.rsplit("-", 1)[1])) for key in keys]


@pytest.fixture(scope="module")
def ckpt(train_tiny) -> Path:
    return train_tiny("cluster", "uncertainty=none") / "checkpoints" / "best.ckpt"


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    """250 rows (ESOL twice, invalid SMILES mixed in) with an id column: 10 chunks of CHUNK rows."""
    smiles = pd.read_csv(FIXTURES / "esol_small.csv", dtype=str, keep_default_na=False)["smiles"].tolist()
    rows = (smiles * 3)[:245]
    for i, bad in enumerate(["not_a_smiles", "", "C1CC", "c1ccccc1(", "[Xx]"]):
        rows.insert(13 + 47 * i, bad)
    path = tmp_path_factory.mktemp("cluster_in") / "mols.csv"
    pd.DataFrame({"id": [f"m{i}" for i in range(len(rows))], "smiles": rows}).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def reference(ckpt, table, tmp_path_factory) -> bytes:
    """The single-process molgnn-predict output of ``table``."""
    out = tmp_path_factory.mktemp("cluster_ref") / "ref.csv"
    predict_file(str(ckpt), table, out, **FAST)
    return out.read_bytes()


@pytest.fixture(scope="module")
def cluster():
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as local,
        distributed.Client(local) as client,
    ):
        yield local.scheduler_address, client


def test_a_worker_killed_mid_run_loses_and_repeats_no_row(ckpt, table, reference, cluster, tmp_path):
    address, client = cluster
    log = tmp_path / "tasks.log"
    client.register_plugin(Watch(str(log), kill=3), name="watch")
    try:
        out = tmp_path / "p.csv"
        summary = predict_file(str(ckpt), table, out, **FAST, cluster={"scheduler": address})
    finally:
        client.unregister_worker_plugin("watch")
    assert Path(f"{log}.killed").exists()  # the worker running chunk 3 died ...
    started = [k for _, k in _started(log)]
    assert started.count(3) == 2 and set(started) == set(range(10))  # ... and chunk 3 was rerun
    assert out.read_bytes() == reference  # every row once, in order, the same numbers
    assert summary.chunks == 10 and summary.rows == summary.output_rows == 250
    assert not parts_dir(out).exists()


def test_an_interrupted_client_is_resumed_without_recomputing_committed_chunks(
    ckpt, table, reference, cluster, tmp_path, monkeypatch
):
    """The client stops (Ctrl-C) after committing 4 chunks; a rerun with resume=true predicts only the rest."""
    import molgnn.predict.cluster as executor

    address, client = cluster
    log, out, commits = tmp_path / "tasks.log", tmp_path / "p.csv", []

    def write_then_stop(*args):
        executor.write_chunk.__wrapped__(*args)
        commits.append(args[1])
        if len(commits) == 4:
            raise KeyboardInterrupt

    write_then_stop.__wrapped__ = executor.write_chunk
    monkeypatch.setattr(executor, "write_chunk", write_then_stop)
    client.register_plugin(Watch(str(log)), name="watch")
    try:
        with pytest.raises(KeyboardInterrupt):
            predict_file(str(ckpt), table, out, **FAST, cluster={"scheduler": address})
        committed = {int(f.name[6:15]): f.stat().st_mtime_ns for f in parts_dir(out).glob("chunk-*.csv")}
        assert sorted(committed) == sorted(commits) and not out.exists()
        first_run = {run for run, _ in _started(log)}
        monkeypatch.setattr(executor, "write_chunk", write_then_stop.__wrapped__)
        summary = predict_file(str(ckpt), table, out, **FAST, resume=True, cluster={"scheduler": address})
    finally:
        client.unregister_worker_plugin("watch")
    rerun = [k for run, k in _started(log) if run not in first_run]
    assert sorted(rerun) == sorted(set(range(10)) - set(committed))  # committed chunks were not recomputed
    assert summary.chunks == 10 - len(committed) and summary.output_rows == 250
    assert out.read_bytes() == reference


def _head(table: Path, path: Path, rows: int = 60) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.read_csv(table, dtype=str, keep_default_na=False).head(rows).to_csv(path, index=False)
    return path


def test_a_local_cluster_started_for_the_run_and_a_file_set(ckpt, table, reference, tmp_path):
    """cluster.local_workers=1 on a list of files: one output per file in the output folder."""
    files = [str(_head(table, tmp_path / "in" / "small.csv")), str(_head(table, tmp_path / "more.csv.gz"))]
    summary = predict_file(str(ckpt), files, tmp_path / "out", **FAST, cluster={"local_workers": 1})
    head = b"".join(reference.splitlines(True)[:61])
    assert [p.name for p in sorted((tmp_path / "out").iterdir())] == ["more.csv", "small.csv"]
    assert all(p.read_bytes() == head for p in (tmp_path / "out").iterdir())
    assert summary.output_rows == 120 and summary.chunks == 6


def test_a_glob_is_a_file_set_locally_too(ckpt, table, reference, tmp_path):
    for name in ("a.csv", "b.csv"):
        _head(table, tmp_path / name)
    summary = predict_file(str(ckpt), str(tmp_path / "*.csv"), tmp_path / "out", **FAST)
    assert [p.name for p in sorted((tmp_path / "out").iterdir())] == ["a.csv", "b.csv"]
    assert (tmp_path / "out" / "b.csv").read_bytes() == b"".join(reference.splitlines(True)[:61])
    assert summary.output_rows == 120


def test_file_set_and_cluster_settings_errors(ckpt, table, tmp_path, monkeypatch):
    with pytest.raises(InputFileError, match="no file matches"):
        predict_file(str(ckpt), str(tmp_path / "*.smi"), tmp_path / "out", **FAST)
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "mols.csv").write_bytes(table.read_bytes())
    with pytest.raises(MolgnnError, match="would both be written to"):
        predict_file(str(ckpt), [str(table), str(tmp_path / "x" / "mols.csv")], tmp_path / "out", **FAST)
    with pytest.raises(MolgnnError, match="not both"):
        cluster_enabled({"scheduler": "tcp://h:8786", "local_workers": 2})
    assert not cluster_enabled({"scheduler": None, "local_workers": 0, "retries": 2})
    with pytest.raises(MolgnnError, match="exclude each other"):
        predict_file(str(ckpt), table, tmp_path / "p.csv", **FAST, world_size=2, cluster={"local_workers": 1})
    monkeypatch.setitem(sys.modules, "distributed", None)  # the extra not installed
    with pytest.raises(MolgnnError, match=r"pip install molgnn\[cluster\]"):
        predict_file(str(ckpt), table, tmp_path / "p.csv", **FAST, cluster={"local_workers": 1})
    assert not (tmp_path / "out").exists() and not (tmp_path / "p.csv").exists()


def test_cluster_keys_of_the_config_reach_predict_file():
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from molgnn.cli import CONF_DIR
    from molgnn.predict import predict_arguments

    needed = ["ckpt_path=m.ckpt", "output_path=out"]
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        on = compose("predict", [*needed, "input.path=[a.csv,b.smi]", "cluster.scheduler=tcp://h:8786"])
        off = compose("predict", [*needed, "input.path=x.csv"])
        none = compose("predict", [*needed, "input.path=x.csv", "cluster=null"])
    GlobalHydra.instance().clear()
    args = predict_arguments(on)
    assert args["cluster"] == {"scheduler": "tcp://h:8786", "local_workers": 0, "retries": 2}
    assert args["input_path"] == ["a.csv", "b.smi"] and cluster_enabled(args["cluster"])
    assert (
        not cluster_enabled(predict_arguments(off)["cluster"]) and predict_arguments(none)["cluster"] is None
    )

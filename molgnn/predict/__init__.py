"""Streaming batch prediction over SMILES files: one output row per input row, in input order.

Pipeline (memory stays flat as the file grows)::

    input file --(pandas chunked reader / line reader)--> chunk k (chunk_rows rows, carried columns)   readers
      --> jobs of JOB_ROWS SMILES --(molgnn.parallel.imap_ordered: fork pool, in order, bounded window)
          --> packed numpy graphs (one parse per SMILES: the featurization engine)                    featurize
      --> PyG batches collated straight from the packed arrays --> model(s) forward (main process,
          overlapped with the workers featurizing the next jobs)                                     infer
      --> chunk frame: carried columns, one column per target (ensemble: <t>_mean, <t>_std), valid, error
      --> <output>.parts/chunk-<k>.{csv,parquet}  (written to a temp name, renamed: a file there is complete)
    end: header + parts concatenated in chunk order -> <output>.tmp-<pid> -> renamed to <output>      parts

``resume=true`` keeps the committed chunk files of an interrupted run (same input, checkpoints and
settings, checked against ``<output>.parts/meta.json``) and predicts only the missing chunks, so no row is
lost or duplicated. Sharding: rank r of W predicts chunks k with k % W == r into the same parts folder and
marks ``rank-r-of-W.done``; rank 0 waits for every rank and merges (``merge_parts``). ``predict_file``
(driver) runs it all; ``conf/predict.yaml`` is checked against ``PredictConfig`` (config) when composed.

Beyond one machine: ``cluster.scheduler=tcp://host:8786`` (or ``cluster.local_workers=N``) runs one Dask task
per chunk (``cluster``: the client reads the chunks above, workers featurize + predict, the client commits
the parts and merges; a killed worker's task is rerun, committed chunks are never recomputed). A file set
(``input.path`` a list or glob) is planned up front (``plan``): one output per file in the folder
``output_path``, each with its own parts store.
"""

from molgnn.predict.cluster import cluster_enabled, predict_chunk, predict_on_cluster
from molgnn.predict.config import ClusterConfig, InputConfig, PredictConfig, predict_arguments
from molgnn.predict.driver import FORMATS, PredictSummary, predict_file, resolve_format
from molgnn.predict.plan import FilePlan, input_files, output_paths, plan_file
from molgnn.predict.featurize import JOB_ROWS, featurize_job, featurized_chunks, iter_batches
from molgnn.predict.infer import Forward, frame_columns, output_frame, predict_jobs
from molgnn.predict.parts import (
    mark_done,
    merge_parts,
    parquet_schema,
    parts_dir,
    start_parts,
    wait_for_ranks,
    write_chunk,
)
from molgnn.predict.readers import count_rows, input_columns, read_chunks

__all__ = [
    "FORMATS",
    "Forward",
    "ClusterConfig",
    "FilePlan",
    "cluster_enabled",
    "input_files",
    "output_paths",
    "plan_file",
    "predict_chunk",
    "predict_on_cluster",
    "JOB_ROWS",
    "InputConfig",
    "PredictConfig",
    "PredictSummary",
    "count_rows",
    "featurize_job",
    "featurized_chunks",
    "frame_columns",
    "input_columns",
    "iter_batches",
    "mark_done",
    "merge_parts",
    "output_frame",
    "parquet_schema",
    "parts_dir",
    "predict_arguments",
    "predict_file",
    "predict_jobs",
    "read_chunks",
    "resolve_format",
    "start_parts",
    "wait_for_ranks",
    "write_chunk",
]

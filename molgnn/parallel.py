"""One bounded, ordered parallel map for every featurization pool (training tables, corpora, descriptors,
streaming prediction).

Jobs run in forked worker processes (numpy-only work: workers must not touch torch's thread pools), results
come back in input order, and at most ``max_in_flight`` jobs are submitted and not yet handed to the caller,
so a stream of millions of rows is never read far ahead of its consumer and memory stays flat.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence

CHUNK_ROWS = 500  # SMILES per job of a batch map: ~0.1-0.5 s of RDKit work, small to pickle back
PARALLEL_MIN_ROWS = 1000  # below this, forking a pool costs more than it saves: run in this process
IN_FLIGHT_PER_WORKER = 2  # one job running and one queued per worker keeps every worker busy


def imap_ordered(
    fn: Callable,
    jobs: Iterable[tuple],
    processes: int,
    max_in_flight: int,
    initializer: Callable | None = None,
    initargs: tuple = (),
) -> Iterator:
    """Yield ``fn(*job)`` for each job of ``jobs`` (read lazily), in order.

    ``processes`` >= 1: a fork pool of that many workers, with at most ``max_in_flight`` (>= 1) jobs
    submitted whose result the caller has not taken yet; ``jobs`` is read no further ahead than that.
    ``initializer(*initargs)`` runs once in each worker (forked: ``initargs`` are inherited, not pickled).
    ``processes`` <= 0: each job runs in this process when its result is asked for (no initializer).
    An exception raised by ``fn`` in a worker is raised here, as the same type with the same message.
    """
    if processes <= 0:
        for job in jobs:
            yield fn(*job)
        return
    with mp.get_context("fork").Pool(processes, initializer, initargs) as pool:
        pending: deque = deque()
        for job in jobs:
            pending.append(pool.apply_async(fn, job))
            if len(pending) >= max(1, max_in_flight):
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


def resolve_workers(num_workers: int | None) -> int:
    """``None``: every core; otherwise ``num_workers`` itself."""
    return (os.cpu_count() or 1) if num_workers is None else num_workers


def map_chunks(
    fn: Callable,
    items: Sequence,
    extra: tuple = (),
    num_workers: int | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> Iterator:
    """Yield ``fn(items[i : i + chunk_rows], *extra)`` for consecutive chunks, in order.

    Forked workers (``num_workers=None``: every core) when there are at least ``PARALLEL_MIN_ROWS`` items
    and more than one worker, with ``IN_FLIGHT_PER_WORKER`` chunks per worker in flight; otherwise this
    process, one chunk at a time.
    """
    workers = resolve_workers(num_workers)
    parallel = workers > 1 and len(items) >= PARALLEL_MIN_ROWS
    jobs = ((items[i : i + chunk_rows], *extra) for i in range(0, len(items), chunk_rows))
    return imap_ordered(fn, jobs, workers if parallel else 0, workers * IN_FLIGHT_PER_WORKER)

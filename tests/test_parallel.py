"""molgnn.parallel: one ordered, bounded map for every featurization pool."""

import os

import pytest

from molgnn.parallel import PARALLEL_MIN_ROWS, imap_ordered, map_chunks


def _square_sum(chunk, offset=0):
    return [x * x + offset for x in chunk], os.getpid()


def _slow_then_fast(i):
    import time

    time.sleep(0.05 if i % 3 == 0 else 0.0)  # early jobs finish last: order must still hold
    return i


def _fail_on(i):
    if i == 5:
        raise ValueError(f"row {i} is broken: original message")
    return i


def test_map_chunks_keeps_order_with_several_workers():
    items = list(range(PARALLEL_MIN_ROWS + 37))
    out = list(map_chunks(_square_sum, items, (1,), num_workers=2, chunk_rows=100))
    assert [x for part, _ in out for x in part] == [x * x + 1 for x in items]
    assert {pid for _, pid in out} - {os.getpid()}  # it did run in workers
    assert list(imap_ordered(_slow_then_fast, ((i,) for i in range(12)), 3, 6)) == list(range(12))


def test_map_chunks_is_serial_when_small_or_one_worker():
    small = list(map_chunks(_square_sum, list(range(10)), num_workers=4, chunk_rows=3))
    assert [len(p) for p, _ in small] == [3, 3, 3, 1] and {pid for _, pid in small} == {os.getpid()}
    one = list(map_chunks(_square_sum, list(range(PARALLEL_MIN_ROWS)), num_workers=1))
    assert {pid for _, pid in one} == {os.getpid()}


@pytest.mark.parametrize("processes", [0, 2])
def test_jobs_are_read_no_further_than_the_in_flight_bound(processes):
    consumed = []

    def jobs():
        for i in range(50):
            consumed.append(i)
            yield (i,)

    results = imap_ordered(_slow_then_fast, jobs(), processes, 4)
    seen_at = []
    for value in results:
        seen_at.append(len(consumed) - value)  # jobs read but not yet handed out, this one included
    assert max(seen_at) <= 4
    assert seen_at[0] == (4 if processes else 1)  # serial reads one job at a time


@pytest.mark.parametrize("processes", [0, 2])
def test_a_worker_exception_surfaces_with_its_message(processes):
    with pytest.raises(ValueError, match="row 5 is broken: original message"):
        list(imap_ordered(_fail_on, ((i,) for i in range(10)), processes, 3))

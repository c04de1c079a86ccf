"""molgnn.storage: atomic writes and the one load-or-compute cache."""

import pytest
import torch

from molgnn.storage import atomic_write, cached, file_digest


def test_atomic_write_replaces_whole_or_leaves_the_old_file(tmp_path):
    path = tmp_path / "sub" / "out.txt"
    atomic_write(path, lambda tmp: tmp.write_text("first"))
    assert path.read_text() == "first"

    def half(tmp):
        tmp.write_text("half of the")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, half)
    assert path.read_text() == "first" and sorted(p.name for p in path.parent.iterdir()) == ["out.txt"]


def test_cached_leaves_no_partial_file_when_compute_raises(tmp_path):
    path = tmp_path / "c.pt"

    def boom():
        raise RuntimeError("compute failed")

    with pytest.raises(RuntimeError, match="compute failed"):
        cached(path, boom)
    assert list(tmp_path.iterdir()) == []


def test_cached_reuses_the_file_and_rebuilds_a_damaged_one(tmp_path):
    path, calls = tmp_path / "c.pt", []

    def compute():
        calls.append(1)
        return {"x": torch.arange(3)}

    first = cached(path, compute)
    second = cached(path, compute)
    assert len(calls) == 1 and torch.equal(first["x"], second["x"])
    path.write_bytes(b"not a torch file")
    assert torch.equal(cached(path, compute)["x"], torch.arange(3)) and len(calls) == 2
    assert torch.equal(torch.load(path, weights_only=True)["x"], torch.arange(3))
    assert cached(None, compute)["x"].numel() == 3 and len(calls) == 3


def test_cached_with_a_custom_format_and_rejecting_loader(tmp_path):
    path = tmp_path / "v.txt"

    def load(p):
        text = p.read_text()
        if text != "42":
            raise ValueError("stale")
        return int(text)

    path.write_text("41")
    assert cached(path, lambda: 42, lambda v, p: p.write_text(str(v)), load) == 42
    assert path.read_text() == "42"


def test_file_digest_follows_the_bytes(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"x" * (3 << 20))
    b.write_bytes(b"x" * (3 << 20) + b"y")
    assert file_digest(a) != file_digest(b) and len(file_digest(a)) == 20

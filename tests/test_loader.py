"""molgnn.data.loader: the resumable shuffle of long runs."""

import torch
from torch.utils.data import RandomSampler

from molgnn.data.loader import ResumableShuffle


def test_resumable_shuffle_draws_what_torch_random_sampler_draws():
    """Uninterrupted, the orders (and the global RNG left behind) are RandomSampler's, so runs that never
    resume are unchanged by it."""
    torch.manual_seed(3)
    ours = [list(ResumableShuffle(50)) for _ in range(3)]
    after_ours = torch.rand(1)
    torch.manual_seed(3)
    theirs = [list(RandomSampler(range(50))) for _ in range(3)]
    assert ours == theirs and torch.equal(after_ours, torch.rand(1))


def test_resumable_shuffle_resumes_the_epoch_where_it_stopped_without_drawing():
    """A saved state replays the epoch's order from item ``items_done`` on and leaves torch's RNG alone;
    the epoch after it, and a state saved at an epoch's end, draw afresh."""
    torch.manual_seed(0)
    first = ResumableShuffle(20)
    epoch = list(first)
    state = first.state(8)
    assert state["items_done"] == 8

    again = ResumableShuffle(20)
    again.resume(state)
    assert again.resuming
    rng = torch.get_rng_state()
    assert list(again) == epoch[8:]
    assert torch.equal(torch.get_rng_state(), rng) and not again.resuming
    assert sorted(list(again)) == list(range(20))  # the next epoch: a full, new order

    ended = ResumableShuffle(20)
    ended.resume(first.state(20))
    assert not ended.resuming and sorted(ended) == list(range(20))

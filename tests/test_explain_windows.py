"""Windows stay inside episodes and cover every step once; batches line up with the steps."""

import numpy as np
import pytest
import torch

from lagless.errors import LaglessError
from lagless.explain.episodes import EpisodeData
from lagless.explain.windows import (
    episode_windows,
    iter_window_batches,
    num_batches,
    training_windows,
)

LENGTHS = (7, 1, 4, 10, 3)


def _data(final=True, continuous=False) -> EpisodeData:
    n = sum(LENGTHS)
    term = np.zeros(n, bool)
    term[np.cumsum(LENGTHS) - 1] = True
    obs = np.arange(n * 6).reshape(n, 3, 2).astype(np.uint8)  # obs of step t starts with 6t
    finals = (200 + np.arange(len(LENGTHS) * 6)).reshape(-1, 3, 2).astype(np.uint8) if final else None
    actions = np.stack([np.arange(n), -np.arange(n)], 1).astype(np.float32) if continuous else np.arange(n) % 3
    return EpisodeData(obs, actions, np.zeros(n, np.float32), term, np.zeros(n, bool), finals)


def _check_cover(data, starts, lengths, length):
    steps = np.concatenate([np.arange(s, s + k) for s, k in zip(starts, lengths)])
    assert np.array_equal(steps, np.arange(data.num_steps))  # every step once, in order
    ids = data.episode_ids()
    assert all(ids[s] == ids[s + k - 1] for s, k in zip(starts, lengths))  # no crossing
    assert lengths.min() >= 1 and lengths.max() <= length
    assert starts.dtype == lengths.dtype == np.int64


@pytest.mark.parametrize("length", [1, 3, 4, 100])
def test_episode_windows_cover_each_step_once_without_crossing(length):
    data = _data()
    starts, lengths = episode_windows(data, length)
    _check_cover(data, starts, lengths, length)
    assert np.array_equal(episode_windows(data.episode_bounds(), length)[0], starts)


def test_episode_windows_cut_consecutive_chunks():
    starts, lengths = episode_windows(_data(), 4)
    assert starts.tolist() == [0, 4, 7, 8, 12, 16, 20, 22]
    assert lengths.tolist() == [4, 3, 1, 4, 4, 4, 2, 3]


def test_training_windows_shift_but_still_cover():
    data = _data()
    rng = np.random.default_rng(0)
    first, _ = training_windows(data, 4, rng)
    cuts = set()
    for _ in range(5):
        starts, lengths = training_windows(data, 4, rng)
        _check_cover(data, starts, lengths, 4)
        cuts.add(tuple(starts))
    assert len(cuts | {tuple(first)}) > 1  # offsets change between epochs


def test_batches_align_with_steps_and_mask_padding():
    data = _data()
    starts, lengths = episode_windows(data, 4)
    batches = list(iter_window_batches(data, starts, lengths, 4, batch_size=3))
    assert len(batches) == num_batches(starts, 3) == 3
    flat = data.observations.reshape(data.num_steps, -1).astype(np.float32)
    final = data.final_observations.reshape(len(LENGTHS), -1).astype(np.float32)
    ends = set((np.cumsum(LENGTHS) - 1).tolist())
    seen = []
    for b in batches:
        assert b["obs"].dtype == torch.float32 and b["obs"].shape[1:] == (4, 6)
        assert b["actions"].dtype == torch.long and b["mask"].dtype == torch.bool
        for i, j in zip(*np.nonzero(b["mask"].numpy())):
            t = int(b["step_index"][i, j])
            seen.append(t)
            assert np.array_equal(b["obs"][i, j].numpy(), flat[t])
            assert b["actions"][i, j] == data.actions[t]
            assert b["next_mask"][i, j]
            expected = final[data.episode_ids()[t]] if t in ends else flat[t + 1]
            assert np.array_equal(b["next_obs"][i, j].numpy(), expected)
        pad = ~b["mask"]
        assert (b["step_index"][pad] == -1).all() and not b["next_mask"][pad].any()
        assert (b["obs"][pad] == 0).all() and (b["next_obs"][pad] == 0).all()
    assert seen == list(range(data.num_steps))


def test_next_mask_false_at_episode_ends_without_final_observation_and_continuous_actions():
    data = _data(final=False, continuous=True)
    starts, lengths = episode_windows(data, 5)
    batch = next(iter_window_batches(data, starts, lengths, 5, batch_size=len(starts)))
    index, mask = batch["step_index"], batch["mask"]
    ends = np.cumsum(LENGTHS) - 1
    assert batch["actions"].shape == (len(starts), 5, 2) and batch["actions"].dtype == torch.float32
    assert torch.equal(batch["next_mask"], mask & ~torch.isin(index, torch.as_tensor(ends)))
    valid = mask.numpy()
    assert np.array_equal(batch["actions"][..., 0].numpy()[valid], index.numpy()[valid].astype(np.float32))


def test_shuffle_is_seeded_and_covers_all_windows():
    data = _data()
    starts, lengths = episode_windows(data, 3)

    def order(seed):
        return [int(b["step_index"][i, 0]) for b in iter_window_batches(
            data, starts, lengths, 3, batch_size=2, shuffle=True, seed=seed) for i in range(len(b["mask"]))]

    assert order(1) == order(1) and sorted(order(1)) == starts.tolist()
    assert order(1) != starts.tolist() or order(2) != starts.tolist()


def test_bad_window_arguments():
    data = _data()
    with pytest.raises(LaglessError, match="window length"):
        episode_windows(data, 0)
    starts, lengths = episode_windows(data, 4)
    with pytest.raises(LaglessError, match="window lengths must lie in 1..2"):
        next(iter_window_batches(data, starts, lengths, 2, batch_size=4))
    with pytest.raises(LaglessError, match="outside"):
        next(iter_window_batches(data, starts + 100, lengths, 4, batch_size=4))

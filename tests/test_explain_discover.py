"""Behaviour discovery end to end: planted behaviours found, labels aligned, model round trip, CLI."""

import itertools
import json

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

from lagless.cli import main
from lagless.errors import LaglessError
from lagless.explain.datasets import save_npz
from lagless.explain.discover import OUT_FILES, discover
from lagless.explain.discover_config import DiscoverConfig
from lagless.explain.episodes import EpisodeData
from lagless.explain.segments import behaviour_stats, find_segments, smooth_labels
from lagless.explain.step_encoding import encode_steps, overlapping_windows
from lagless.explain.synthetic import MOVES, planted_behaviours
from lagless.explain.vqvae import EMAQuantizer, load_vqvae
from lagless.explain.windows import iter_window_batches

SMALL = {"window": 16, "d_model": 32, "layers": 1, "heads": 2, "code_dim": 16, "codebook_size": 32,
         "batch_size": 32, "lr": 3e-3, "ema_decay": 0.95, "progress": False}
TINY_FLAGS = ["--window", "8", "--d-model", "16", "--layers", "1", "--heads", "2", "--code-dim", "8",
              "--codebook-size", "16", "--updates", "10", "--batch-size", "8", "--no-progress"]


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory):
    data, truth = planted_behaviours(6000, seed=0)
    out = tmp_path_factory.mktemp("discover")
    summary = discover(data, out, DiscoverConfig(updates=300, seed=0, **SMALL), source="planted")
    return data, truth, out, summary


def test_recovers_planted_behaviours(planted_run):
    _, truth, out, summary = planted_run
    labels = np.load(out / "labels.npy")
    assert adjusted_rand_score(truth, labels) >= 0.7
    assert 3 <= summary["num_behaviours"] <= 6
    assert summary["codebook_usage"] > 0.25 and summary["perplexity"] > 4
    assert np.isfinite(summary["reconstruction_mse"])
    assert summary["updates"] == 300
    choice = summary["confidence"]["eigengap"]
    assert choice["best"] >= summary["num_behaviours"] and str(choice["runner_up"]) in choice["gaps"]
    assert isinstance(summary["confidence"]["warnings"], list)
    assert summary["refine"]["behaviours"] == summary["num_behaviours"]  # relabelled as policies
    assert 0.0 <= summary["refine"]["steps_relabelled"] < 0.5
    assert summary["places"]["found"] is False  # a walk on a grid: no places, the code graph decides
    assert summary["places"]["eigengap"] < summary["places"]["min_eigengap"]
    report = (out / "report.html").read_text()
    assert "How sure is this?" in report and "No places" in report


def test_updates_follow_the_data_size():
    config = DiscoverConfig()
    assert config.updates_for(5_000) == config.updates_for(20_000) == 1500
    assert 1500 < config.updates_for(100_000) < config.updates_for(500_000) <= 6000
    assert config.updates_for(10_000_000) == 6000
    assert DiscoverConfig(updates=77).updates_for(10_000_000) == 77


def test_labels_align_with_steps_and_segments_tile_episodes(planted_run):
    data, _, out, summary = planted_run
    n = data.num_steps
    labels, codes = np.load(out / "labels.npy"), np.load(out / "codes.npy")
    assert labels.shape == codes.shape == (n,) and labels.dtype == codes.dtype == np.int64
    assert codes.min() >= 0 and codes.max() < SMALL["codebook_size"]
    assert labels.min() >= 0 and labels.max() < summary["num_behaviours"]
    graph = json.loads((out / "code_graph.json").read_text())
    assert set(graph["behaviour_of_code"]) <= set(range(summary["num_behaviours"]))

    segments = json.loads((out / "segments.json").read_text())
    bounds = data.episode_bounds()
    rebuilt = np.full(n, -1)
    for e, (first, end) in enumerate(bounds):
        mine = [s for s in segments if s["episode"] == e]
        assert mine[0]["start"] == first and mine[-1]["end"] == end
        assert all(a["end"] == b["start"] and a["behaviour"] != b["behaviour"]
                   for a, b in itertools.pairwise(mine))
        for s in mine:
            rebuilt[s["start"]:s["end"]] = s["behaviour"]
    np.testing.assert_array_equal(rebuilt, labels)
    assert sum(s["end"] - s["start"] for s in segments) == n

    behaviours = json.loads((out / "behaviours.json").read_text())
    assert [b["id"] for b in behaviours] == list(range(summary["num_behaviours"]))
    assert sum(b["steps"] for b in behaviours) == n
    assert sum(b["segments"] for b in behaviours) == len(segments) == summary["num_segments"]
    for b in behaviours:
        assert b["typical_actions"] and sum(a["frequency"] for a in b["typical_actions"]) <= 1 + 1e-9

    graph = json.loads((out / "code_graph.json").read_text())
    weights = np.array(graph["weights"])
    np.testing.assert_allclose(weights, weights.T)
    assert graph["codes"] == sorted(np.unique(codes).tolist())
    assert len(graph["behaviour_of_code"]) == len(graph["codes"])

    info = json.loads((out / "discover.json").read_text())
    assert info["data"] == "planted" and info["num_steps"] == n
    assert info["config"]["window"] == 16 and "lagless_version" in info
    for name in OUT_FILES:
        assert (out / name).is_file(), name


def test_saved_model_gives_identical_codes(planted_run):
    data, _, out, _ = planted_run
    model = load_vqvae(out)
    encoding = encode_steps(model, data, embeddings=True)
    np.testing.assert_array_equal(encoding.codes, np.load(out / "codes.npy"))
    assert encoding.embeddings.shape == (data.num_steps, SMALL["code_dim"])
    starts, lengths = overlapping_windows(data, 16, 0)
    batch = next(iter(iter_window_batches(data, starts[:4], lengths[:4], 16, batch_size=4)))
    with torch.inference_mode():
        z, codes = model.encode(batch)
    assert z.shape == (4, 16, SMALL["code_dim"]) and codes.shape == (4, 16)
    # The first window of an episode is coded exactly as labelling coded it.
    np.testing.assert_array_equal(codes[0].numpy(), np.load(out / "codes.npy")[:16])


def test_deterministic_for_a_seed(tmp_path):
    data, _ = planted_behaviours(1500, seed=2)
    config = dict(SMALL, updates=20, seed=7)
    threads = torch.get_num_threads()
    discover(data, tmp_path / "a", DiscoverConfig(**config))
    discover(data, tmp_path / "b", DiscoverConfig(**config))
    assert torch.get_num_threads() == threads  # discovery restores the thread count
    for name in ("codes.npy", "labels.npy"):
        np.testing.assert_array_equal(np.load(tmp_path / "a" / name), np.load(tmp_path / "b" / name))
    for name in ("model.safetensors", "code_graph.json", "segments.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_labelling_windows_cover_every_step_once():
    data, _ = planted_behaviours(3000, seed=1, episode_length=(5, 90))
    bounds = data.episode_bounds()
    episode = data.episode_ids()
    for overlap in (0, 4, 12):
        starts, lengths = overlapping_windows(data, 16, overlap)
        assert np.all(episode[starts] == episode[starts + lengths - 1])  # never crosses
        owned = np.zeros(data.num_steps, dtype=int)
        first_window = np.isin(starts, bounds[:, 0])
        for s, n, first in zip(starts, lengths, first_window):
            skip = 0 if first else overlap
            owned[s + skip: s + n] += 1
        assert np.all(owned == 1)


def test_ema_codebook_moves_codes_towards_assigned_encodings():
    torch.manual_seed(0)
    q = EMAQuantizer(codebook_size=3, code_dim=2, decay=0.5)
    q.codebook.copy_(torch.tensor([[0.0, 0.0], [5.0, 5.0], [-5.0, 5.0]]))
    q.ema_sum.copy_(q.codebook)
    z = torch.tensor([[1.0, 1.0], [1.2, 0.8], [0.8, 1.2], [4.0, 4.0]])
    codes = q.assign(z)
    assert codes.tolist() == [0, 0, 0, 1]
    before = q.codebook.clone()
    q.ema_update(z, codes)
    target = torch.tensor([[1.0, 1.0], [4.0, 4.0]])
    for code in (0, 1):
        assert (q.codebook[code] - target[code]).norm() < (before[code] - target[code]).norm()
    torch.testing.assert_close(q.codebook[2], before[2], atol=0.5, rtol=0)  # unused: barely moves
    restarted = q.restart_dead(z, min_count=0.9, generator=torch.Generator().manual_seed(0))
    assert restarted == 1 and any(torch.equal(q.codebook[2], row) for row in z)


def test_segments_and_smoothing():
    labels = np.array([0, 0, 0, 1, 0, 0, 2, 2, 2, 2, 1, 1, 1, 1, 3, 1, 1])
    episodes = np.array([0] * 10 + [1] * 7)
    seg = find_segments(labels, episodes)
    assert list(zip(seg.start, seg.end, seg.behaviour)) == [
        (0, 3, 0), (3, 4, 1), (4, 6, 0), (6, 10, 2), (10, 14, 1), (14, 15, 3), (15, 17, 1)]
    smooth = smooth_labels(labels, episodes, 2)
    np.testing.assert_array_equal(smooth, [0] * 6 + [2] * 4 + [1] * 7)
    assert len(find_segments(smooth, episodes)) == 3
    np.testing.assert_array_equal(smooth_labels(labels, episodes, 1), labels)
    # A run that is its whole episode stays, however short.
    np.testing.assert_array_equal(smooth_labels(np.array([0, 1, 1, 1]), np.array([0, 1, 1, 1]), 3),
                                  [0, 1, 1, 1])


def test_behaviour_stats():
    labels = np.array([0, 0, 1, 1, 1, 0])
    data = EpisodeData(observations=np.zeros((6, 2), np.float32), actions=np.array([2, 2, 0, 1, 1, 3]),
                       rewards=np.array([1, 1, 0, 0, 5, 2], np.float32),
                       terminations=np.array([0, 0, 0, 0, 0, 1], bool), truncations=np.zeros(6, bool))
    seg = find_segments(labels, data.episode_ids())
    stats = behaviour_stats(data, labels, seg, 3)
    assert stats[0] == {"id": 0, "steps": 3, "segments": 2, "mean_length": 1.5, "mean_return": 2.0,
                        "typical_actions": [{"action": 2, "frequency": 2 / 3},
                                            {"action": 3, "frequency": 1 / 3}]}
    assert stats[1]["typical_actions"][0] == {"action": 1, "frequency": 2 / 3}
    assert stats[1]["mean_return"] == 5.0
    assert stats[2]["steps"] == 0 and stats[2]["mean_return"] is None


def test_unusable_data_is_a_user_error(tmp_path):
    data, _ = planted_behaviours(10, seed=0)
    with pytest.raises(LaglessError, match="fewer than one window"):
        discover(data, tmp_path, DiscoverConfig(**SMALL))
    n = 100
    flat = EpisodeData(observations=np.ones((n, 3), np.float32), actions=np.zeros(n, np.int64),
                       rewards=np.zeros(n, np.float32), terminations=np.zeros(n, bool),
                       truncations=np.zeros(n, bool))
    with pytest.raises(LaglessError, match="no behaviours"):
        discover(flat, tmp_path, DiscoverConfig(**SMALL))
    with pytest.raises(LaglessError, match="--behaviours"):
        discover(planted_behaviours(100)[0], tmp_path, DiscoverConfig(behaviours=0))
    (tmp_path / "file").write_text("")
    with pytest.raises(LaglessError, match="not a folder"):
        discover(planted_behaviours(100)[0], tmp_path / "file", DiscoverConfig(**SMALL))


def test_continuous_actions(tmp_path):
    planted, _ = planted_behaviours(800, seed=0)
    data = EpisodeData(planted.observations, MOVES[planted.actions].astype(np.float32), planted.rewards,
                       planted.terminations, planted.truncations)
    summary = discover(data, tmp_path, DiscoverConfig(**dict(SMALL, updates=10, behaviours=2)))
    behaviours = json.loads((tmp_path / "behaviours.json").read_text())
    assert summary["num_behaviours"] == 2
    assert all(len(b["typical_actions"]["mean"]) == 2 for b in behaviours if b["steps"])
    assert load_vqvae(tmp_path).config.discrete_actions is False


def test_cli_discover_writes_every_file(tmp_path, capsys):
    data, _ = planted_behaviours(600, seed=0)
    npz = tmp_path / "planted.npz"
    save_npz(data, npz)
    out = tmp_path / "out"
    assert main(["explain", "discover", str(npz), "--out", str(out), *TINY_FLAGS,
                 "--behaviours", "3"]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 1 and "600 steps" in printed[0] and "3 behaviours" in printed[0]
    for name in OUT_FILES:
        assert (out / name).is_file(), name
    info = json.loads((out / "discover.json").read_text())
    assert info["data"] == str(npz.resolve()) and info["num_behaviours"] == 3
    assert info["config"]["updates"] == 10


@pytest.mark.parametrize("case", ["missing", "zero_behaviours", "too_little"])
def test_cli_bad_input_is_one_line_and_exit_2(case, tmp_path, capsys):
    npz = tmp_path / "data.npz"
    save_npz(planted_behaviours(600 if case != "too_little" else 5, seed=0)[0], npz)
    extra = {"missing": [], "zero_behaviours": ["--behaviours", "0"], "too_little": []}[case]
    data = str(tmp_path / "nope.npz") if case == "missing" else str(npz)
    assert main(["explain", "discover", data, "--out", str(tmp_path / "out"), *TINY_FLAGS, *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lagless explain: error:")

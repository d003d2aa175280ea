"""Attribution: planted behaviours with a known answer, a real lagless agent, and bad input."""

import json
import shutil

import numpy as np
import pytest

from lagless.cli import main
from lagless.errors import LaglessError
from lagless.explain.agent_policy import agent_outputs
from lagless.explain.attribute import attribute, select_queries
from lagless.explain.attribution import action_distance, js_similarity, most_attributed
from lagless.explain.bc_policy import discounted_returns
from lagless.explain.datasets import load_dataset, load_npz_extras, save_npz
from lagless.explain.episodes import EpisodeData
from lagless.explain.record import record
from lagless.explain.vqvae import VQVAE, VQVAEConfig, save_vqvae

TINY_TRAIN = ["--num-envs", "2", "--rollout-steps", "32", "--num-minibatches", "1", "--update-epochs", "2",
              "--hidden", "16", "--no-progress", "--no-tensorboard", "--total-steps", "128"]


def write_out(out, data: EpisodeData, labels: np.ndarray, source: str) -> None:
    """A discover OUT folder as E2 writes it, from known labels (no VQ-VAE model)."""
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "labels.npy", labels.astype(np.int64))
    episode_ids = data.episode_ids()
    cut = np.flatnonzero((labels[1:] != labels[:-1]) | (episode_ids[1:] != episode_ids[:-1])) + 1
    starts, ends = np.r_[0, cut], np.r_[cut, len(labels)]
    segments = [{"episode": int(episode_ids[s]), "start": int(s), "end": int(e), "behaviour": int(labels[s])}
                for s, e in zip(starts, ends)]
    k_count = int(labels.max()) + 1
    behaviours = []
    for k in range(k_count):
        mine = [s for s in segments if s["behaviour"] == k]
        freq = np.bincount(data.actions[labels == k], minlength=data.num_actions) / max((labels == k).sum(), 1)
        behaviours.append({"id": k, "steps": int((labels == k).sum()), "segments": len(mine),
                           "mean_length": float(np.mean([s["end"] - s["start"] for s in mine])),
                           "mean_return": float(np.mean([data.rewards[s["start"]:s["end"]].sum() for s in mine])),
                           "typical_actions": [{"action": int(a), "frequency": float(freq[a])}
                                               for a in np.argsort(-freq)[:3] if freq[a] > 0]})
    (out / "segments.json").write_text(json.dumps(segments))
    (out / "behaviours.json").write_text(json.dumps(behaviours))
    (out / "discover.json").write_text(json.dumps({"data": source, "num_steps": data.num_steps,
                                                   "num_behaviours": k_count, "config": {"seed": 0}}))


def planted(episodes: int = 12, segment: int = 20, seed: int = 0):
    """Three behaviours in separate state regions; action 3 happens only in behaviour 2's region."""
    rng = np.random.default_rng(seed)
    obs, actions, labels, rewards = [], [], [], []
    for _ in range(episodes):
        for k in rng.permutation(3):
            noise = rng.normal(size=(segment, 3)).astype(np.float32)
            region = np.zeros((segment, 3), np.float32)
            region[:, k] = 1.0
            obs.append(np.concatenate([region, noise], axis=1))
            if k == 2:
                actions.append(np.full(segment, 3))
            else:
                actions.append(np.where(noise[:, k] > 0, k, k + 1))
            labels.append(np.full(segment, k))
            rewards.append(np.full(segment, 1.0 if k == 2 else 0.0, np.float32))
    n = episodes * 3 * segment
    done = np.zeros(n, bool)
    done[3 * segment - 1::3 * segment] = True
    data = EpisodeData(np.concatenate(obs), np.concatenate(actions).astype(np.int64), np.concatenate(rewards),
                       done, np.zeros(n, bool))
    return data, np.concatenate(labels)


@pytest.fixture(scope="module")
def planted_out(tmp_path_factory):
    root = tmp_path_factory.mktemp("planted")
    data, labels = planted()
    path = save_npz(data, root / "data.npz")
    write_out(root / "out", data, labels, str(path))
    return root / "out", data, labels


def test_methods_on_known_distributions():
    p = np.array([[1.0, 0.0], [0.5, 0.5]])
    assert np.allclose(js_similarity(p, p), 1.0)
    assert np.allclose(js_similarity(p[:1], np.array([[0.0, 1.0]])), 0.0)
    assert np.allclose(action_distance(p, p[::-1], discrete=True), [0.5, 0.5])
    assert np.allclose(action_distance(np.zeros((1, 2)), np.array([[3.0, 4.0]]), discrete=False), 5.0)
    assert list(most_attributed(np.array([[0.1, np.nan, 0.3], [np.nan, np.nan, np.nan]]))) == [2, -1]
    bounds = np.array([[0, 2], [2, 3]])
    assert np.allclose(discounted_returns(np.array([1.0, 1.0, 2.0]), bounds, 0.5), [1.5, 1.0, 2.0])


def test_counterfactual_and_similarity_find_the_behaviour_behind_an_action(planted_out):
    out, _data, labels = planted_out
    result = attribute(out, bc=True, queries=120, updates=200, seed=0, progress=False)
    saved = json.loads((out / "attribution.json").read_text())
    assert saved["num_queries"] == 120 and saved["settings"]["agent"] == "bc"
    takes_3 = [q for q in result["queries"] if q["agent_action"] == 3]
    assert len(takes_3) > 20
    assert all(q["counterfactual"]["behaviour"] == 2 for q in takes_3)
    assert all(q["similarity"]["behaviour"] == 2 for q in takes_3)
    # action 1 is shared by behaviours 0 and 1, so elsewhere the answer is mostly, not always, the own one
    for method in ("similarity", "counterfactual"):
        assert np.mean([q[method]["behaviour"] == labels[q["step"]] for q in result["queries"]]) > 0.85
    summary = result["behaviours"]
    assert [b["steps"] for b in summary] == [np.sum(labels == k) for k in range(3)]
    assert summary[2]["action_contrast"] >= len(takes_3) / 120 - 0.05
    assert summary[2]["mean_action_change"] > max(summary[0]["mean_action_change"], summary[1]["mean_action_change"])
    assert summary[2]["embedding_distance"] is None and "no VQ-VAE" in result["embedding_note"]
    assert abs(sum(b["counterfactual_frequency"] for b in summary) - 1.0) < 1e-9
    assert (out / "report.html").exists()


def test_attribution_is_deterministic_and_episode_queries(planted_out, tmp_path):
    shared, data, _labels = planted_out
    out = tmp_path / "out"
    shutil.copytree(shared, out)
    config = VQVAEConfig(obs_dim=6, num_actions=4, window=8, d_model=16, layers=1, heads=2, code_dim=4,
                         codebook_size=8)
    save_vqvae(VQVAE(config).eval(), out)  # untrained, but it embeds every step all the same
    a = attribute(out, bc=True, episode=1, updates=40, seed=3, progress=False)
    b = attribute(out, bc=True, episode=1, updates=40, seed=3, progress=False)
    distances = [behaviour["embedding_distance"] for behaviour in a["behaviours"]]
    assert all(d is not None and d > 0 for d in distances) and a["embedding_note"] is None
    start, end = data.episode_bounds()[1]
    assert [q["step"] for q in a["queries"]] == list(range(start, end))
    assert a["queries"] == b["queries"] and a["behaviours"] == b["behaviours"]
    assert np.array_equal(select_queries(data, 10, None, 1), select_queries(data, 10, None, 1))


def test_continuous_actions(tmp_path):
    data, labels = planted(episodes=6)
    moves = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]], np.float32)
    noise = np.random.default_rng(1).normal(scale=0.05, size=(data.num_steps, 2)).astype(np.float32)
    data.actions = moves[labels] + noise
    as_discrete = EpisodeData(data.observations, labels, data.rewards, data.terminations, data.truncations)
    write_out(tmp_path, as_discrete, labels, "")  # the data itself is passed to attribute below
    result = attribute(tmp_path, bc=True, data=data, queries=40, updates=100, progress=False)
    assert "Gaussian" not in result["settings"]["similarity"] and "exp(" in result["settings"]["similarity"]
    assert result["settings"]["action_change"].startswith("L2")
    right = [q["counterfactual"]["behaviour"] == q["label"] for q in result["queries"]]
    assert np.mean(right) > 0.85 and len(result["queries"][0]["agent_action"]) == 2


@pytest.fixture(scope="module")
def recorded_run(tmp_path_factory):
    """A tiny lagless run that sees its last actions and previous observation, and 3 recorded episodes."""
    root = tmp_path_factory.mktemp("run")
    run = root / "run"
    assert main(["train", "--env", "MinAtar/Breakout-v1", "--arch", "skip", "--run-dir", str(run),
                 "--last-actions", "2", "--obs-history", "1", "--max-episode-frames", "40", *TINY_TRAIN]) == 0
    path = root / "data.npz"
    record(run, 3, path, num_envs=2, seed=5, progress=False)
    return run, path


def test_agent_teacher_forced_matches_its_recorded_actions(recorded_run):
    run, path = recorded_run
    data = load_dataset(path)
    extras = load_npz_extras(path)
    steps = np.arange(data.num_steps)
    outputs = agent_outputs(run, data, steps, progress=False)
    assert np.allclose(outputs.probs, extras["policy_probs"], atol=1e-5)
    assert np.allclose(outputs.values, extras["values"], atol=1e-4)
    some = np.array([3, data.num_steps - 1])  # only the episodes holding these steps are run
    assert np.allclose(agent_outputs(run, data, some, progress=False).probs, extras["policy_probs"][some], atol=1e-5)


def test_policy_and_recorded_attribution_end_to_end(recorded_run, tmp_path, capsys):
    run, path = recorded_run
    data = load_dataset(path)
    labels = (np.arange(data.num_steps) // 15) % 2
    out = tmp_path / "out"
    write_out(out, data, labels, str(path))
    assert main(["explain", "attribute", str(out), "--policy", str(run), "--queries", "25", "--updates", "20",
                 "--no-progress"]) == 0
    line = capsys.readouterr().out.strip()
    n = min(25, data.num_steps)  # as many as the recorded episodes hold
    assert n >= 10 and f"{n} queries" in line and "attribution.json" in line and "\n" not in line
    result = json.loads((out / "attribution.json").read_text())
    assert result["settings"]["agent"] == "policy" and len(result["queries"]) == n
    assert all(q["agent_value"] is not None and len(q["similarity"]["scores"]) == 2 for q in result["queries"])
    assert main(["explain", "attribute", str(out), "--recorded", "--episode", "0", "--updates", "10",
                 "--no-progress"]) == 0
    result = json.loads((out / "attribution.json").read_text())
    assert result["settings"]["agent"] == "recorded" and result["num_queries"] == data.episode_bounds()[0, 1]


def _one_line_error(capsys, argv) -> str:
    try:
        code = main(argv)
    except SystemExit as e:  # argparse usage errors exit from inside the parser
        code = e.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err and "\n" not in err and "Traceback" not in err
    return err


def test_bad_input_is_one_line_and_exit_2(planted_out, recorded_run, tmp_path, capsys):
    out, _, _ = planted_out
    run, _ = recorded_run
    attr = ["explain", "attribute"]
    assert "--policy" in _one_line_error(capsys, [*attr, str(out)])
    assert "not allowed" in _one_line_error(capsys, [*attr, str(out), "--bc", "--policy", str(run)])
    assert "not a folder" in _one_line_error(capsys, [*attr, str(tmp_path / "missing"), "--bc"])
    (tmp_path / "empty").mkdir()
    assert "labels.npy" in _one_line_error(capsys, [*attr, str(tmp_path / "empty"), "--bc"])
    assert "shape" in _one_line_error(capsys, [*attr, str(out), "--policy", str(run), "--no-progress"])
    assert "--episode" in _one_line_error(capsys, [*attr, str(out), "--bc", "--episode", "99"])
    assert "not both" in _one_line_error(capsys, [*attr, str(out), "--bc", "--episode", "0", "--queries", "5"])
    assert "labels.npy" in _one_line_error(capsys, ["explain", "report", str(tmp_path / "empty")])
    with pytest.raises(LaglessError, match="policy_probs"):  # this dataset has no recorded probabilities
        attribute(out, recorded=True, progress=False, updates=1)

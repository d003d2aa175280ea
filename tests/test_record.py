"""`lagless record`: a tiny trained agent's episodes to npz and Minari, equal both ways; bad input."""

import numpy as np
import pytest

from lagless.cli import main
from lagless.explain.datasets import load_dataset, load_extras, load_npz_extras
from lagless.explain.record import record


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run = tmp_path_factory.mktemp("record") / "run"
    assert main(["train", "--env", "MinAtar/Breakout-v1", "--arch", "skip", "--total-steps", "64",
                 "--num-envs", "2", "--rollout-steps", "32", "--num-minibatches", "1", "--update-epochs", "2",
                 "--hidden", "16", "--no-progress", "--no-tensorboard", "--last-actions", "1",
                 "--max-episode-frames", "12", "--run-dir", str(run)]) == 0
    return run


@pytest.fixture(autouse=True)
def minari_root(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    return tmp_path / "minari"


def test_record_npz_and_minari_give_the_same_episodes(run_dir, tmp_path, capsys):
    out = tmp_path / "data" / "breakout.npz"
    assert main(["record", str(run_dir), "--episodes", "3", "--out", str(out), "--num-envs", "2",
                 "--seed", "5", "--no-progress"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("recorded 3 episodes") and str(out) in line and "\n" not in line
    data = load_dataset(out)
    bounds = data.episode_bounds()
    assert len(bounds) == 3 and bounds[-1, 1] == data.num_steps
    assert data.observations.shape[1:] == (10, 10, 4) and data.observations.dtype == np.bool_
    assert data.actions.dtype == np.int64 and data.final_observations.shape == (3, 10, 10, 4)
    done = data.terminations | data.truncations
    assert np.flatnonzero(done).tolist() == (bounds[:, 1] - 1).tolist()  # flags only at episode ends
    assert (bounds[:, 1] - bounds[:, 0]).max() <= 12  # --max-episode-frames of the run
    assert data.meta["env"] == "MinAtar/Breakout-v1" and data.meta["arch"] == "skip"
    assert data.meta["checkpoint_step"] == 64 and data.meta["num_actions"] == 3
    extras = load_npz_extras(out)
    assert extras["policy_probs"].shape == (data.num_steps, 3)
    assert np.allclose(extras["policy_probs"].sum(1), 1, atol=1e-5)
    assert extras["values"].shape == (data.num_steps,) and np.isfinite(extras["values"]).all()

    summary = record(run_dir, 3, format="minari", dataset_id="tests/breakout/agent-v0", num_envs=2,
                     seed=5, progress=False)
    assert summary["episodes"] == 3 and summary["steps"] == data.num_steps
    from_minari = load_dataset("tests/breakout/agent-v0")  # same seed, same episodes
    for name in ("observations", "actions", "rewards", "terminations", "truncations", "final_observations"):
        a, b = getattr(data, name), getattr(from_minari, name)
        assert a.dtype == b.dtype and np.array_equal(a, b), name
    assert np.allclose(load_extras("tests/breakout/agent-v0")["policy_probs"], extras["policy_probs"])


def test_greedy_record_takes_the_most_likely_action(run_dir, tmp_path):
    out = tmp_path / "greedy.npz"
    summary = record(run_dir, 2, out, greedy=True, num_envs=2, progress=False)
    assert summary["greedy"] and summary["episodes"] == 2
    data, probs = load_dataset(out), load_npz_extras(out)["policy_probs"]
    assert np.array_equal(data.actions, probs.argmax(1))


def test_record_of_a_delayed_environment_keeps_the_observation_dtype(tmp_path):
    run = tmp_path / "late"
    assert main(["train", "--env", "MinAtar/Breakout-v1", "--arch", "instant", "--obs-delay", "1",
                 "--total-steps", "64", "--num-envs", "2", "--rollout-steps", "32", "--num-minibatches", "1",
                 "--update-epochs", "1", "--hidden", "8", "--no-progress", "--no-tensorboard",
                 "--max-episode-frames", "12", "--run-dir", str(run)]) == 0
    out = tmp_path / "late.npz"
    summary = record(run, 2, out, num_envs=2, progress=False)
    assert summary["episodes"] == 2
    data = load_dataset(out)
    assert data.observations.dtype == np.bool_ and data.observations.shape[1:] == (10, 10, 4)
    assert np.array_equal(data.observations[0], data.observations[1])  # first step shown twice


@pytest.mark.parametrize(("argv", "message"), [
    (["--episodes", "0", "--out", "x.npz"], "--episodes must be >= 1, got 0"),
    (["--episodes", "1", "--out", "x.csv"], "must be a file ending in .npz"),
    (["--episodes", "1", "--format", "minari"], "needs --dataset-id"),
    (["--episodes", "1", "--dataset-id", "no version"], "is malformed"),
])
def test_bad_record_arguments_exit_2_with_one_line(run_dir, capsys, argv, message):
    assert main(["record", str(run_dir), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_bad_run_dir_exits_2_with_one_line(tmp_path, capsys):
    assert main(["record", str(tmp_path / "nope"), "--episodes", "1", "--out", str(tmp_path / "d.npz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lagless record: error:") and err.count("\n") == 1
    assert not (tmp_path / "d.npz").exists()

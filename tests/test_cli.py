"""Smoke runs of the command line: train every architecture, eval, resume, kill, bad input."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from lagless.cli import main
from lagless.realtime import ARCHITECTURES
from lagless.runs import checkpoint_step, list_checkpoints, read_metrics

ENV = "MinAtar/Breakout-v1"
TINY = ["--num-envs", "2", "--rollout-steps", "32", "--num-minibatches", "1", "--update-epochs", "2",
        "--hidden", "16", "--no-progress", "--no-tensorboard"]


def _train(run_dir, *extra):
    return main(["train", "--env", ENV, "--run-dir", str(run_dir), *TINY, *extra])


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_train_every_architecture(arch, tmp_path, capsys):
    run = tmp_path / arch
    assert _train(run, "--arch", arch, "--layers", "3", "--total-steps", "192", "--last-actions", "1") == 0
    assert "done: 192 steps" in capsys.readouterr().out
    config = json.loads((run / "config.json").read_text())
    assert config["arch"] == arch and config["layers"] == 3
    metrics = read_metrics(run / "metrics.csv")
    assert list(metrics["step"]) == [64, 128, 192]
    assert np.isfinite(metrics["losses/policy_loss"]).all()
    assert [p.name for p in list_checkpoints(run)][-1] == "step_000000000192"


@pytest.mark.parametrize("arch", ["skip", "lstm"])
def test_bf16_precision_trains(arch, tmp_path):
    run = tmp_path / arch
    assert _train(run, "--arch", arch, "--precision", "bf16", "--critic", "delayed", "--total-steps", "128",
                  "--last-actions", "2") == 0
    metrics = read_metrics(run / "metrics.csv")
    assert np.isfinite(metrics["losses/policy_loss"]).all() and np.isfinite(metrics["losses/value_loss"]).all()


def test_delayed_critic_and_observation_history(tmp_path):
    run = tmp_path / "run"
    assert _train(run, "--arch", "obs_to_all", "--critic", "delayed", "--obs-history", "2",
                  "--tau", "2", "--total-steps", "128") == 0
    assert np.isfinite(read_metrics(run / "metrics.csv")["losses/value_loss"]).all()


def test_delayed_observations_train_and_evaluate(tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(run, "--arch", "instant", "--obs-delay", "1", "--last-actions", "1",
                  "--total-steps", "128") == 0
    assert json.loads((run / "config.json").read_text())["obs_delay"] == 1
    assert main(["eval", str(run), "--episodes", "2"]) == 0  # eval sees the same delayed env
    summary = json.loads((run / "eval.json").read_text())
    assert summary["episodes"] == 2
    # the whole delay: the instant network's 0 plus the sensor's 1
    assert (summary["min_delay"], summary["max_delay"], summary["obs_delay"]) == (1, 1, 1)
    assert "delay 1..1 (network 0..0 + sensor 1)" in capsys.readouterr().out
    assert _train(tmp_path / "bad", "--obs-delay", "-1") == 2
    assert "--obs-delay must be >= 0" in capsys.readouterr().err


def test_time_limit_truncation_is_bootstrapped(tmp_path, monkeypatch):
    """Breakout's rewards are whole numbers; a step cut by the time limit gets gamma * V(last obs) added."""
    from lagless.realtime import ppo

    seen, real_gae = [], ppo.gae

    def spy(rewards, values, dones, *rest):
        seen.append((rewards.clone(), dones.clone()))
        return real_gae(rewards, values, dones, *rest)

    monkeypatch.setattr(ppo, "gae", spy)
    run = tmp_path / "run"
    assert _train(run, "--max-episode-frames", "10", "--total-steps", "128", "--last-actions", "2") == 0
    metrics = read_metrics(run / "metrics.csv")
    assert np.nanmax(metrics["charts/episodic_length"]) <= 10
    rewards = torch.cat([r for r, _ in seen])
    dones = torch.cat([d for _, d in seen]).bool()
    bootstrapped = rewards != rewards.round()
    assert bootstrapped.sum() >= 4  # 2 envs x 64 steps: at least a few cuts at 10 frames
    assert not (bootstrapped & ~dones).any()  # only where an episode ended


def test_eval_writes_summary(tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(run, "--arch", "skip", "--total-steps", "128") == 0
    assert main(["eval", str(run), "--episodes", "3"]) == 0
    out = capsys.readouterr().out
    assert "3 episodes" in out and "delay 1..4" in out
    summary = json.loads((run / "eval.json").read_text())
    assert summary["episodes"] == len(summary["returns"]) == 3
    assert summary["min"] <= summary["mean"] <= summary["max"]
    assert summary["actor_min_delay"] == 1 and summary["actor_max_delay"] == 4


def test_eval_fused_acts_exactly_like_the_sequential_actor(tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(run, "--arch", "skip", "--layers", "4", "--last-actions", "2", "--total-steps", "128") == 0
    assert main(["eval", str(run), "--episodes", "3", "--greedy", "--seed", "5"]) == 0
    plain = json.loads((run / "eval.json").read_text())
    assert main(["eval", str(run), "--episodes", "3", "--greedy", "--seed", "5", "--fused"]) == 0
    fused = json.loads((run / "eval.json").read_text())
    assert "fused executor" in capsys.readouterr().out and fused["fused"]
    assert fused["returns"] == plain["returns"] and fused["max_delay"] == plain["max_delay"] == 4


@pytest.mark.parametrize("arch", ["instant", "lstm"])
def test_fused_on_an_architecture_that_cannot_be_fused_is_refused(arch, tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(run, "--arch", arch, "--total-steps", "64", "--rollout-steps", "32") == 0
    capsys.readouterr()
    assert main(["eval", str(run), "--episodes", "1", "--fused"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot fuse" in err[0] and "without --fused" in err[0]
    assert main(["record", str(run), "--episodes", "1", "--out", str(tmp_path / "d.npz"), "--fused"]) == 2


def test_resume_extends_a_finished_run(tmp_path):
    run = tmp_path / "run"
    assert _train(run, "--total-steps", "128", "--checkpoint-every", "64") == 0
    assert main(["train", "--resume", str(run), "--total-steps", "256"]) == 0
    metrics = read_metrics(run / "metrics.csv")
    assert list(metrics["step"]) == [64, 128, 192, 256]
    assert json.loads((run / "config.json").read_text())["total_steps"] == 256


def test_config_file_then_flags(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"arch": "chain", "layers": 2, "total_steps": 64}))
    run = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--layers", "3", "--env", ENV, "--run-dir", str(run), *TINY]) == 0
    config = json.loads((run / "config.json").read_text())
    assert (config["arch"], config["layers"], config["total_steps"]) == ("chain", 3, 64)


def test_same_seed_gives_identical_metrics(tmp_path):
    runs = []
    for name in ("a", "b"):
        assert _train(tmp_path / name, "--arch", "res_skip", "--total-steps", "192", "--seed", "7") == 0
        runs.append(read_metrics(tmp_path / name / "metrics.csv"))
    for key in runs[0]:
        if key in ("charts/sps",):
            continue  # wall-clock
        np.testing.assert_array_equal(runs[0][key], runs[1][key], err_msg=key)


BAD_INPUTS = [
    (["--env", "NoSuchGame-v0"], "NoSuchGame-v0"),
    (["--env", ENV, "--arch", "mamba"], "unknown architecture 'mamba'"),
    (["--env", ENV, "--tau", "0"], "--tau must be >= 1"),
    (["--env", ENV, "--layers", "0"], "--layers must be >= 1"),
    (["--env", ENV, "--critic", "oracle"], "unknown critic"),
    (["--env", ENV, "--precision", "fp8"], "unknown precision 'fp8'"),
]


@pytest.mark.parametrize("flags,message", BAD_INPUTS)
def test_bad_train_input_is_one_line_exit_2(flags, message, tmp_path, capsys):
    assert main(["train", *flags, "--run-dir", str(tmp_path / "r"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_resume_of_a_folder_without_a_run(tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "holds no lagless run" in err and len(err.splitlines()) == 1


def test_corrupt_and_truncated_checkpoints(tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(run, "--total-steps", "128", "--checkpoint-every", "64") == 0
    newest = list_checkpoints(run)[-1]
    weights = newest / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # truncated
    assert main(["eval", str(run), "--episodes", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "corrupt" in err and len(err.splitlines()) == 1
    (newest / "meta.json").write_text("{not json")
    assert main(["train", "--resume", str(run), "--total-steps", "256"]) == 2
    err = capsys.readouterr().err.strip()
    assert str(newest.name) in err and len(err.splitlines()) == 1
    # nothing already saved was lost
    assert (list_checkpoints(run)[0] / "weights.safetensors").exists()


def test_usage_error_subprocess_has_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "lagless.cli", "train", "--layers", "abc"],
                          check=False, capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert "--layers" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_killed_run_resumes_and_finishes(tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "lagless.cli", "train", "--env", ENV, "--run-dir", str(run), *TINY,
           "--total-steps", "100000", "--checkpoint-every", "64", "--threads", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 120
    while time.time() < deadline and not list_checkpoints(run):
        time.sleep(0.2)
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert list_checkpoints(run), "no checkpoint appeared before the kill"
    killed_at = checkpoint_step(list_checkpoints(run)[-1])
    assert killed_at < 100000
    # resume, with a smaller total so the test stays short
    total = killed_at + 128
    assert main(["train", "--resume", str(run), "--total-steps", str(total), "--no-progress"]) == 0
    assert checkpoint_step(list_checkpoints(run)[-1]) == total
    steps = read_metrics(run / "metrics.csv")["step"]
    assert steps[-1] == total and np.all(np.diff(steps) > 0)  # no duplicated rows after the resume
    assert Path(run / "returns.png").exists()


def _rows(csv):
    try:
        return len(csv.read_text().splitlines()) - 1
    except OSError:
        return 0


def test_terminated_run_saves_a_checkpoint_and_exits_130(tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "lagless.cli", "train", "--env", ENV, "--run-dir", str(run), *TINY,
           "--total-steps", "100000", "--checkpoint-every", "100000", "--threads", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 120
    while time.time() < deadline and _rows(run / "metrics.csv") < 1:  # training has started
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "--resume" in err and "Traceback" not in err
    saved = list_checkpoints(run)
    assert saved and 0 < checkpoint_step(saved[-1]) < 100000

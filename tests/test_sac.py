"""SAC from the command line on MuJoCo: every kind of actor, resume after a kill, determinism."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from lagless.cli import main
from lagless.runs import checkpoint_step, list_checkpoints, read_metrics

ENV = "Hopper-v5"
TINY = ["--algo", "sac", "--env", ENV, "--hidden", "16", "--critic-hidden", "16", "--batch-size", "16",
        "--learning-starts", "100", "--log-every", "100", "--no-progress", "--no-tensorboard"]


def _train(run_dir, *extra):
    return main(["train", "--run-dir", str(run_dir), *TINY, *extra])


@pytest.mark.parametrize("arch", ["instant", "chain", "skip", "lstm"])
def test_sac_smoke_every_kind_of_actor(arch, tmp_path, capsys):
    run = tmp_path / arch
    assert _train(run, "--arch", arch, "--layers", "3", "--total-steps", "300", "--last-actions", "2") == 0
    assert "done: 300 steps" in capsys.readouterr().out
    config = json.loads((run / "config.json").read_text())
    assert config["algo"] == "sac" and config["arch"] == arch
    metrics = read_metrics(run / "metrics.csv")
    assert list(metrics["step"]) == [100, 200, 300]
    assert np.isfinite(metrics["losses/critic_loss"][1:]).all() and metrics["charts/updates"][-1] == 200
    meta = json.loads((list_checkpoints(run)[-1] / "meta.json").read_text())
    assert meta["kind"] == "sac" and meta["format_version"] == 2 and meta["layout_id"].startswith(arch)
    assert main(["eval", str(run), "--episodes", "2"]) == 0
    assert "(sac)" in capsys.readouterr().out


def test_sac_same_seed_gives_identical_metrics(tmp_path):
    runs = []
    for name in ("a", "b"):
        assert _train(tmp_path / name, "--arch", "skip", "--total-steps", "300", "--seed", "3") == 0
        runs.append(read_metrics(tmp_path / name / "metrics.csv"))
    for key in runs[0]:
        if key not in ("charts/sps", "charts/updates_per_s"):  # wall-clock
            np.testing.assert_array_equal(runs[0][key], runs[1][key], err_msg=key)


def test_sac_resume_continues_with_the_replay(tmp_path):
    run = tmp_path / "run"
    assert _train(run, "--arch", "skip", "--total-steps", "200", "--checkpoint-every", "100") == 0
    assert main(["train", "--resume", str(run), "--total-steps", "400", "--no-progress"]) == 0
    metrics = read_metrics(run / "metrics.csv")
    assert list(metrics["step"]) == [100, 200, 300, 400]
    assert metrics["charts/updates"][-1] == 300  # the replay came back: no second warm-up
    meta = json.loads((list_checkpoints(run)[-1] / "meta.json").read_text())
    assert meta["trainer"]["updates"] == 300


def test_killed_sac_run_resumes_and_finishes(tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "lagless.cli", "train", "--run-dir", str(run), *TINY, "--arch", "chain",
           "--total-steps", "1000000", "--checkpoint-every", "100", "--threads", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 120
    while time.time() < deadline and len(list_checkpoints(run)) < 2:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert list_checkpoints(run), "no checkpoint appeared before the kill"
    killed_at = checkpoint_step(list_checkpoints(run)[-1])
    total = killed_at + 200
    assert main(["train", "--resume", str(run), "--total-steps", str(total), "--no-progress"]) == 0
    assert checkpoint_step(list_checkpoints(run)[-1]) == total
    steps = read_metrics(run / "metrics.csv")["step"]
    assert steps[-1] == total and np.all(np.diff(steps) > 0)
    assert (run / "returns.png").exists()


def test_sac_trains_and_acts_in_bf16(tmp_path, capsys):
    run = tmp_path / "bf16"
    assert _train(run, "--arch", "skip", "--layers", "3", "--total-steps", "300", "--precision", "bf16") == 0
    assert json.loads((run / "config.json").read_text())["precision"] == "bf16"
    metrics = read_metrics(run / "metrics.csv")
    assert np.isfinite(metrics["losses/critic_loss"][1:]).all() and metrics["charts/updates"][-1] == 200
    assert main(["eval", str(run), "--episodes", "2"]) == 0
    assert _train(tmp_path / "bad", "--precision", "fp8", "--total-steps", "100") == 2
    assert "unknown precision 'fp8'" in capsys.readouterr().err

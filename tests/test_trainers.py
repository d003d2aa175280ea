"""The trainer seam: registry, checkpoint kind/format/layout checks, resume rules, bad input."""

import json
import shutil
import subprocess
import sys

import pytest

from lagless.cli import main
from lagless.realtime.ppo import PPOTrainer
from lagless.runs import list_checkpoints
from lagless.trainers import register_trainer

PPO = ["--env", "CartPole-v1", "--num-envs", "2", "--rollout-steps", "32", "--update-epochs", "1",
       "--hidden", "16", "--no-progress", "--no-tensorboard"]
SAC = ["--algo", "sac", "--env", "Hopper-v5", "--hidden", "16", "--critic-hidden", "16", "--batch-size", "16",
       "--learning-starts", "50", "--log-every", "50", "--no-progress", "--no-tensorboard"]


def _one_line_error(capsys, *needles):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.fixture(scope="module")
def ppo_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("ppo") / "run"
    assert main(["train", *PPO, "--arch", "skip", "--total-steps", "128", "--run-dir", str(run)]) == 0
    return run


@pytest.fixture(scope="module")
def sac_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("sac") / "run"
    assert main(["train", *SAC, "--arch", "chain", "--total-steps", "100", "--run-dir", str(run)]) == 0
    return run


def _copy(run, tmp_path):
    target = tmp_path / run.name
    shutil.copytree(run, target)
    return target


def _edit_meta(run, **changes):
    meta_path = list_checkpoints(run)[-1] / "meta.json"
    meta = json.loads(meta_path.read_text())
    for key, value in changes.items():
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value
    meta_path.write_text(json.dumps(meta))


def test_a_checkpoint_with_another_layout_is_refused(ppo_run, tmp_path, capsys):
    run = _copy(ppo_run, tmp_path)
    _edit_meta(run, layout_id="skip-rt1-0123456789")
    assert main(["eval", str(run), "--episodes", "1"]) == 2
    _one_line_error(capsys, "skip-rt1-0123456789", "skip-rt2-")  # names both layouts
    assert main(["train", "--resume", str(run), "--total-steps", "256"]) == 2
    _one_line_error(capsys, "network layout")


def test_a_checkpoint_from_before_layouts_were_recorded_is_refused(ppo_run, tmp_path, capsys):
    run = _copy(ppo_run, tmp_path)
    _edit_meta(run, format_version=None, layout_id=None, kind="realtime-ppo")
    assert main(["eval", str(run), "--episodes", "1"]) == 2
    _one_line_error(capsys, "before checkpoints recorded their network layout", "retrain")


def test_a_checkpoint_of_another_kind_than_the_run_is_refused(ppo_run, sac_run, tmp_path, capsys):
    run = _copy(ppo_run, tmp_path)
    for old in list_checkpoints(run):
        shutil.rmtree(old)
    shutil.copytree(list_checkpoints(sac_run)[-1], run / "checkpoints" / list_checkpoints(sac_run)[-1].name)
    assert main(["eval", str(run), "--episodes", "1"]) == 2
    _one_line_error(capsys, "trainer 'sac'", "'ppo' run")


def test_a_checkpoint_whose_config_differs_from_the_runs_is_refused(ppo_run, tmp_path, capsys):
    run = _copy(ppo_run, tmp_path)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "hidden": 32}))
    assert main(["eval", str(run), "--episodes", "1"]) == 2
    _one_line_error(capsys, "--hidden")


@pytest.mark.parametrize("flags,needle", [(["--arch", "chain"], "--arch cannot change"),
                                          (["--hidden", "32"], "--hidden cannot change"),
                                          (["--env", "Acrobot-v1"], "--env cannot change"),
                                          (["--algo", "sac"], "--algo cannot change")])
def test_resume_refuses_flags_that_change_the_network_env_or_algorithm(ppo_run, tmp_path, capsys, flags,
                                                                       needle):
    run = _copy(ppo_run, tmp_path)
    assert main(["train", "--resume", str(run), *flags]) == 2
    _one_line_error(capsys, needle)
    assert len(list_checkpoints(run)) == len(list_checkpoints(ppo_run))  # nothing lost


def test_sac_policy_records_continuous_actions(sac_run, tmp_path):
    out = tmp_path / "sac.npz"
    assert main(["record", str(sac_run), "--episodes", "2", "--out", str(out), "--no-progress"]) == 0
    import numpy as np

    with np.load(out) as data:
        assert data["actions"].ndim == 2 and data["actions"].dtype == np.float32
        assert np.abs(data["actions"]).max() <= 1.0


def test_attribution_to_a_continuous_policy_is_a_clear_error(sac_run, tmp_path, capsys):
    out = tmp_path / "sac.npz"
    assert main(["record", str(sac_run), "--episodes", "2", "--out", str(out), "--no-progress"]) == 0
    from lagless.errors import LaglessError
    from lagless.explain.agent_policy import agent_outputs
    from lagless.explain.datasets import load_dataset

    with pytest.raises(LaglessError, match="continuous actions"):
        agent_outputs(sac_run, load_dataset(out), [0, 1], progress=False)


def test_a_third_trainer_plugs_in_by_registering(tmp_path, capsys):
    """No edit to the run, checkpoint or eval code: register a class, then train and evaluate."""

    @register_trainer
    class CopyTrainer(PPOTrainer):
        name = "ppo-copy"
        description = "PPO under another name"

    run = tmp_path / "run"
    assert main(["train", "--algo", "ppo-copy", *PPO, "--arch", "chain", "--total-steps", "64",
                 "--run-dir", str(run)]) == 0
    assert json.loads((list_checkpoints(run)[-1] / "meta.json").read_text())["kind"] == "ppo-copy"
    assert main(["eval", str(run), "--episodes", "1"]) == 0
    assert "(ppo-copy)" in capsys.readouterr().out


BAD = [
    (["--algo", "dqn"], "unknown algorithm 'dqn'"),
    (["--algo", "sac", "--env", "CartPole-v1"], "needs a Box (continuous) action space"),
    (["--algo", "sac", "--env", "HalfCheetah-v3"], "HalfCheetah-v5"),
    (["--algo", "sac", "--env", "Hopper-v5", "--device", "cuda"], "--device cuda"),
    (["--env", "CartPole-v1", "--device", "tpu"], "unknown device 'tpu'"),
    (["--algo", "sac", "--env", "Hopper-v5", "--burn-in", "-2"], "--burn-in must be >= 0"),
    (["--env", "CartPole-v1", "--num-envs", "6", "--num-minibatches", "4"], "pass --num-minibatches 3"),
]


@pytest.mark.parametrize("flags,needle", BAD)
def test_bad_trainer_input_is_one_line_exit_2(flags, needle, tmp_path, capsys):
    if "cuda" in flags:
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA: --device cuda is valid here")
    run = tmp_path / "r"
    assert main(["train", *flags, "--run-dir", str(run), "--no-progress"]) == 2
    _one_line_error(capsys, needle)
    assert not run.exists()  # a refused config leaves no run folder


def test_bad_algo_in_a_subprocess_has_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "lagless.cli", "train", "--algo", "nope", "--help"],
                          check=False, capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "unknown algorithm" in proc.stderr


def test_top_level_help_names_every_trainer(capsys):
    from lagless.trainers import trainer_names

    with pytest.raises(SystemExit):
        main(["--help"])
    train_line = next(line for line in capsys.readouterr().out.splitlines() if line.strip().startswith("train "))
    assert all(name in train_line for name in trainer_names()) and "ald" in train_line


def test_num_envs_4_trains_with_the_default_minibatches(tmp_path):
    run = tmp_path / "r"
    assert main(["train", "--env", "CartPole-v1", "--num-envs", "4", "--rollout-steps", "16", "--hidden", "8",
                 "--total-steps", "64", "--run-dir", str(run), "--no-progress", "--no-tensorboard"]) == 0


@pytest.mark.parametrize("argv", [["train", "--help"], ["train", "--algo", "sac", "--help"],
                                  ["eval", "--help"], ["record", "--help"], ["kdlora", "run", "--help"],
                                  ["explain", "discover", "--help"]])
def test_help_names_each_default_once(argv, capsys):
    with pytest.raises(SystemExit):
        main(argv)
    text = " ".join(capsys.readouterr().out.split())
    options = text.split(" --")
    assert len(options) > 4
    for option in options:
        assert option.count("(default") <= 1, option
    if "sac" in argv:
        assert "--target-update-rate" in text and "--rollout-steps" not in text

"""``load_policy(run_dir)``: the acting agent of any trainer's run, checked before it is trusted."""

from __future__ import annotations

from pathlib import Path

from lagless.devices import resolve_device
from lagless.realtime.fused import fuse
from lagless.realtime.policy import Policy
from lagless.runs import load_module_tensors
from lagless.trainers.registry import get_trainer
from lagless.trainers.run_dir import check_checkpoint, check_spaces, load_run_checkpoint


def load_policy(run_dir: str | Path, checkpoint: str | Path | None = None, *,
                device: str = "cpu", fused: bool = False) -> Policy:
    """The policy of a run's newest (or given) checkpoint, rebuilt from the checkpoint's own config.

    Refused with a one-line error: a checkpoint of another format, trainer or network layout,
    one whose config differs from the run's in a setting that shapes the network or the
    environment, or one made for other observation or action spaces. ``fused``: act with the
    fused executor (``lagless.realtime.fuse``; pipelined actors only, others are refused).
    """
    algo, config, tensors, meta, path = load_run_checkpoint(run_dir, checkpoint)
    trainer_cls = get_trainer(algo)
    probe = config.make_envs(1)
    obs_space, act_space = probe.single_observation_space, probe.single_action_space
    probe.close()
    models = trainer_cls.build_models(config, obs_space, act_space, resolve_device(device))
    check_checkpoint(meta, path, algo=algo, layout_id=trainer_cls.layout_id(config, models))
    check_spaces(meta, obs_space, act_space, path)
    for name, module in models.items():
        load_module_tensors(f"{name}.", module, tensors)
        module.eval()
    policy = trainer_cls.make_policy(config, models, obs_space, act_space)
    policy.kind, policy.step, policy.checkpoint = algo, int(meta["step"]), path
    if fused:
        policy.actor = fuse(policy.actor)
    return policy

"""Training throughput: lagless against Stable-Baselines3 (PPO steps/s, SAC updates/s), same settings.

Both libraries train the same network (the lagless ``instant`` net with 4 layers of 128:
conv 16 3x3 -> 128 -> 128 -> head, separate critic of the same shape) on the same wrapped
environments (``lagless.envs.make_single_env``), with the same PPO settings (16 envs,
128-step rollouts, 8 minibatches of 256, 4 epochs), one after the other in one process and
with the same number of torch threads, so the ratio is fair on a shared machine.

The headline steps/s come from our own wall clock around the learning call (``train`` for
lagless, ``model.learn`` for SB3), after one short warm-up run of each; lagless's own
``TrainResult.sps`` is recorded next to it.  Results are merged into
``benchmarks/results/throughput.json`` (one record per env and settings) and summarised in
``benchmarks/results/throughput.md``.

    python benchmarks/throughput.py [--env MinAtar/Breakout-v1] [--steps 200000] [--threads 1]
    python benchmarks/throughput.py --profile 51200   # cProfile lagless's train, no SB3

``--algo sac`` measures SAC gradient updates per second instead (default env HalfCheetah-v5):
lagless's ``SACTrainer._update`` against SB3's ``SAC.train``, with the same networks (actor
obs -> 256 -> 256 -> mean and log-std; twin critics (obs, action) -> 256 -> 256 -> 1), batch
256, lr 3e-4 and automatic entropy tuning. Both replays are first filled with ``--fill``
random steps of the same wrapped environment; after an untimed warm-up of each, ``--repeats``
blocks of ``--updates`` updates of each are timed, interleaved and with the order alternating,
so both see the same machine load. Only the updates are timed (replay sampling included, as
each library's update samples its own batch), not acting, because the update is what the
two implementations do differently on the same hardware::

    python benchmarks/throughput.py --algo sac --repeats 3
"""

from __future__ import annotations

import argparse
import os
import sys


def _parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--algo", default="ppo", choices=("ppo", "sac"),
                   help="ppo: training steps/s (the default); sac: gradient updates/s")
    p.add_argument("--env", default=None,
                   help="Gymnasium id (default: MinAtar/Breakout-v1 for ppo, HalfCheetah-v5 for sac)")
    p.add_argument("--steps", type=int, default=200_000, help="ppo: agent steps per timed run")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads for both libraries")
    p.add_argument("--out", default="benchmarks/results/throughput.json", help="JSON results file")
    p.add_argument("--warmup", type=int, default=None,
                   help="untimed warm-up: steps of each library (ppo, default 4096) or updates (sac, "
                        "default 200)")
    p.add_argument("--updates", type=int, default=1000, help="sac: timed gradient updates per run")
    p.add_argument("--fill", type=int, default=5000,
                   help="sac: random environment steps put in each replay before timing (>= 1000)")
    p.add_argument("--repeats", type=int, default=1,
                   help="timed runs of each library, interleaved (lagless, SB3, lagless, ...); "
                        "the fastest run of each is reported, as other load only slows runs down")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16"),
                   help="lagless's --precision (SB3 has no such setting and stays fp32)")
    p.add_argument("--profile", type=int, default=0, metavar="S",
                   help="only cProfile lagless's train for S steps and print where time goes")
    args = p.parse_args(argv)
    args.env = args.env or ("HalfCheetah-v5" if args.algo == "sac" else "MinAtar/Breakout-v1")
    if args.warmup is None:
        args.warmup = 200 if args.algo == "sac" else 4096
    return args


ARGS = _parse_args() if __name__ == "__main__" else None
if ARGS is not None:  # before torch is imported, so the OpenMP pool gets the same size
    os.environ["OMP_NUM_THREADS"] = str(ARGS.threads)
    os.environ["MKL_NUM_THREADS"] = str(ARGS.threads)

import datetime as _dt
import json
import platform
import shlex
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from lagless.envs import make_single_env
from lagless.realtime.agent import ActorCritic
from lagless.realtime.ppo import train
from lagless.realtime.ppo_config import PPOConfig
from lagless.realtime.sac import SACTrainer
from lagless.realtime.sac_config import SACConfig

NUM_ENVS = 16
ROLLOUT_STEPS = 128
NUM_MINIBATCHES = 8
UPDATE_EPOCHS = 4
LAYERS = 4
HIDDEN = 128
CONV_CHANNELS = 16
LR = 5e-4
SEED = 1
GIT_AT_START: dict = {}
NETWORK = (f"instant L{LAYERS} H{HIDDEN}: conv{CONV_CHANNELS} 3x3 pad1 -> {HIDDEN} -> {HIDDEN} -> "
           f"head; separate critic of the same shape")


# --------------------------------------------------------------------------- lagless
PRECISION = ARGS.precision if ARGS is not None else "fp32"


def lagless_config(env: str, steps: int, threads: int, run_dir: str, *, seed: int = SEED,
                   precision: str = PRECISION) -> PPOConfig:
    return PPOConfig(env=env, arch="instant", layers=LAYERS, hidden=HIDDEN, critic="instant",
                     total_steps=steps, num_envs=NUM_ENVS, rollout_steps=ROLLOUT_STEPS,
                     num_minibatches=NUM_MINIBATCHES, update_epochs=UPDATE_EPOCHS, lr=LR,
                     seed=seed, run_dir=run_dir, progress=False, tensorboard=False,
                     threads=threads, checkpoint_every=10**9, precision=precision)


def run_lagless(env: str, steps: int, threads: int) -> dict:
    """One lagless training run; wall time around ``train`` (its env construction included)."""
    with tempfile.TemporaryDirectory(prefix="lagless-bench-") as tmp:
        config = lagless_config(env, steps, threads, str(Path(tmp) / "run"))
        t0, c0 = time.perf_counter(), time.process_time()
        result = train(config)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"steps": result.global_step, "wall_s": wall, "sps": result.global_step / wall,
            "cpu_s": cpu, "cpu_sps": result.global_step / cpu, "internal_sps": result.sps}


def lagless_param_count(env: str) -> int:
    e = make_single_env(env)
    agent = ActorCritic(lagless_config(env, 1, 1, ""), e.observation_space, e.action_space)
    e.close()
    return sum(p.numel() for p in agent.parameters())


# --------------------------------------------------------------------------- SB3
def _sb3_extractor_class():
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

    class ConvFeatures(BaseFeaturesExtractor):
        """lagless's ConvStage: HWC image -> conv 16 3x3 pad 1 -> ReLU -> flatten."""

        def __init__(self, observation_space, channels: int = CONV_CHANNELS):
            h, w, c = observation_space.shape
            super().__init__(observation_space, features_dim=channels * h * w)
            self.conv = nn.Conv2d(c, channels, kernel_size=3, padding=1)

        def forward(self, obs: torch.Tensor) -> torch.Tensor:
            return torch.relu(self.conv(obs.permute(0, 3, 1, 2))).flatten(1)

    return ConvFeatures


def make_sb3_model(env: str, threads: int, *, seed: int = SEED, monitor: bool = False):
    """An SB3 PPO with lagless's network and settings on the same wrapped environments.

    ``monitor`` adds SB3's ``VecMonitor`` (episode returns in ``info["episode"]``) for the
    learning curves of ``peer_quality.py``; the throughput runs leave it out, as they always
    have, so that their numbers stay comparable with the earlier records.
    """
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor

    image = len(make_single_env(env).observation_space.shape) == 3
    venv = DummyVecEnv([lambda: make_single_env(env)] * NUM_ENVS)
    if monitor:
        venv = VecMonitor(venv)
    policy_kwargs = {"share_features_extractor": False, "activation_fn": nn.ReLU,
                     "net_arch": {"pi": [HIDDEN] * (LAYERS - 2), "vf": [HIDDEN] * (LAYERS - 2)}}
    if image:
        policy_kwargs["features_extractor_class"] = _sb3_extractor_class()
    else:  # vector observations: the first hidden layer is a dense layer, as in lagless
        policy_kwargs["net_arch"] = {"pi": [HIDDEN] * (LAYERS - 1), "vf": [HIDDEN] * (LAYERS - 1)}
    model = PPO("MlpPolicy", venv, n_steps=ROLLOUT_STEPS,
                batch_size=NUM_ENVS * ROLLOUT_STEPS // NUM_MINIBATCHES, n_epochs=UPDATE_EPOCHS,
                learning_rate=lambda progress_remaining: LR * progress_remaining,  # = anneal_lr
                gamma=0.99, gae_lambda=0.95, clip_range=0.2, ent_coef=0.01, vf_coef=0.5,
                max_grad_norm=0.5, policy_kwargs=policy_kwargs, device="cpu", seed=seed,
                verbose=0)
    torch.set_num_threads(threads)  # SB3's seeding leaves threads alone; make sure anyway
    return model


def run_sb3(env: str, steps: int, threads: int) -> dict:
    """One SB3 run; wall time around ``model.learn`` only (model and envs built before)."""
    model = make_sb3_model(env, threads)
    t0, c0 = time.perf_counter(), time.process_time()
    model.learn(total_timesteps=steps)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    done = int(model.num_timesteps)
    model.get_env().close()
    return {"steps": done, "wall_s": wall, "sps": done / wall, "cpu_s": cpu, "cpu_sps": done / cpu}


# --------------------------------------------------------------------------- SAC
SAC_LAYERS = 3  # actor stages, head included: obs -> 256 -> 256 -> head
SAC_HIDDEN = 256
SAC_BATCH = 256
SAC_LR = 3e-4
SAC_LEARNING_STARTS = 5000
SAC_NETWORK = (f"actor instant L{SAC_LAYERS} H{SAC_HIDDEN}: obs -> {SAC_HIDDEN} -> {SAC_HIDDEN} -> "
               f"mean and log-std; twin critics (obs, action) -> {SAC_HIDDEN} -> {SAC_HIDDEN} -> 1")


def sac_lagless_config(env: str, steps: int, threads: int, run_dir: str, *, seed: int = SEED,
                       learning_starts: int = SAC_LEARNING_STARTS, log_every: int = 1000,
                       precision: str = PRECISION) -> SACConfig:
    """lagless SAC with SB3's MuJoCo settings, spelled out so that a change of defaults shows."""
    return SACConfig(env=env, arch="instant", layers=SAC_LAYERS, hidden=SAC_HIDDEN,
                     critic_layers=3, critic_hidden=SAC_HIDDEN, batch_size=SAC_BATCH, lr=SAC_LR,
                     buffer_size=1_000_000, learning_starts=learning_starts, updates_per_step=1.0,
                     gamma=0.99, target_update_rate=0.005, alpha=0.0, total_steps=steps, num_envs=1,
                     seed=seed, run_dir=run_dir, progress=False, tensorboard=False, threads=threads,
                     checkpoint_every=10**9, log_every=log_every, precision=precision)


def make_sb3_sac(env: str, threads: int, *, seed: int = SEED,
                 learning_starts: int = SAC_LEARNING_STARTS, monitor: bool = False):
    """An SB3 SAC with lagless's networks and settings on the same wrapped environment."""
    from stable_baselines3 import SAC
    from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor

    venv = DummyVecEnv([lambda: make_single_env(env)])
    if monitor:
        venv = VecMonitor(venv)
    model = SAC("MlpPolicy", venv, learning_rate=SAC_LR, buffer_size=1_000_000,
                learning_starts=learning_starts, batch_size=SAC_BATCH, tau=0.005, gamma=0.99,
                train_freq=1, gradient_steps=1, ent_coef="auto", target_entropy="auto",
                policy_kwargs={"net_arch": {"pi": [SAC_HIDDEN] * 2, "qf": [SAC_HIDDEN] * 2},
                               "activation_fn": nn.ReLU},
                device="cpu", seed=seed, verbose=0)
    torch.set_num_threads(threads)
    return model


def sac_param_counts(env: str, threads: int) -> tuple[int, int]:
    """Trainable parameters of actor + twin critics (targets and entropy coefficient left out)."""
    e = make_single_env(env)
    m = SACTrainer.build_models(sac_lagless_config(env, 1, threads, ""), e.observation_space,
                                e.action_space, torch.device("cpu"))["sac"]
    e.close()
    n_lagless = sum(p.numel() for mod in (m.actor, m.critic) for p in mod.parameters())
    sb3 = make_sb3_sac(env, threads)
    n_sb3 = sum(p.numel() for mod in (sb3.actor, sb3.critic) for p in mod.parameters())
    sb3.get_env().close()
    return n_lagless, n_sb3


class LaglessSACUpdates:
    """A lagless SAC trainer with ``fill`` random steps in its replay; ``run(n)`` does n updates."""

    def __init__(self, env: str, threads: int, fill: int):
        torch.manual_seed(SEED)
        config = sac_lagless_config(env, fill, threads, "", learning_starts=fill, log_every=fill).validate()
        self.envs = config.make_envs(1, seed=SEED)
        device = torch.device("cpu")
        models = SACTrainer.build_models(config, self.envs.single_observation_space,
                                         self.envs.single_action_space, device)
        self.trainer = SACTrainer(config, models, self.envs, device)
        self.trainer.start(0)
        self.trainer.iterate(0)  # `fill` random-action steps, no update (learning starts after them)
        assert len(self.trainer.replay) == fill and self.trainer.updates == 0

    def run(self, n: int) -> None:
        for _ in range(n):
            self.trainer._update()


class SB3SACUpdates:
    """An SB3 SAC with ``fill`` random steps in its replay; ``run(n)`` does n updates."""

    def __init__(self, env: str, threads: int, fill: int):
        self.model = make_sb3_sac(env, threads, learning_starts=fill)
        self.model.learn(total_timesteps=fill)  # random actions only: training starts after `fill`
        assert self.model.replay_buffer.size() == fill and self.model._n_updates == 0

    def run(self, n: int) -> None:
        self.model.train(gradient_steps=n, batch_size=SAC_BATCH)


def update_flops(bench, n: int = 5) -> float:
    """Floating-point operations of one update, as torch's FLOP counter sees them (matrix
    products; elementwise work is not counted): what both libraries must compute."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        bench.run(n)
    return counter.get_total_flops() / n


def time_updates(bench, n: int) -> dict:
    t0, c0 = time.perf_counter(), time.process_time()
    bench.run(n)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"updates": n, "wall_s": wall, "ups": n / wall, "cpu_s": cpu, "cpu_ups": n / cpu}


def main_sac(args: argparse.Namespace) -> int:
    n_lagless, n_sb3 = sac_param_counts(args.env, args.threads)
    print(f"parameters (actor + critics): lagless {n_lagless:,}  SB3 {n_sb3:,}")
    if n_lagless != n_sb3:
        print("error: the networks differ in size; fix the SB3 policy before comparing", file=sys.stderr)
        return 1
    if args.fill < 1000:
        print("error: --fill must be >= 1000 so that batches are drawn from a real replay", file=sys.stderr)
        return 1

    print(f"filling both replays with {args.fill} random steps of {args.env} ...", flush=True)
    benches = {"lagless": LaglessSACUpdates(args.env, args.threads, args.fill),
               "sb3": SB3SACUpdates(args.env, args.threads, args.fill)}
    print(f"warm-up: {args.warmup} updates of each ...", flush=True)
    for bench in benches.values():
        bench.run(args.warmup)
    flops = {name: update_flops(bench) for name, bench in benches.items()}
    print(f"matrix-product work per update: lagless {flops['lagless'] / 1e6:.1f} MFLOP, SB3 "
          f"{flops['sb3'] / 1e6:.1f} MFLOP (SB3 / lagless {flops['sb3'] / flops['lagless']:.3f}x: the ratio "
          "at equal arithmetic speed)", flush=True)

    runs: dict[str, list[dict]] = {"lagless": [], "sb3": []}
    for i in range(args.repeats):
        order = ("lagless", "sb3") if i % 2 == 0 else ("sb3", "lagless")  # no fixed first place
        for name in order:
            r = time_updates(benches[name], args.updates)
            runs[name].append(r)
            print(f"[{i + 1}/{args.repeats}] {name:8s} {r['updates']} updates in {r['wall_s']:.1f}s = "
                  f"{r['ups']:.1f} updates/s ({r['cpu_ups']:.1f} per CPU s)", flush=True)
    benches["lagless"].envs.close()
    benches["sb3"].model.get_env().close()

    best = {name: max(r["ups"] for r in rs) for name, rs in runs.items()}  # load only slows runs down
    ratio = best["lagless"] / best["sb3"]
    paired = [a["ups"] / b["ups"] for a, b in zip(runs["lagless"], runs["sb3"])]
    record = {
        "algo": "sac",
        "env": args.env,
        "lagless_precision": PRECISION,
        "lagless_ups": round(best["lagless"], 2),
        "sb3_ups": round(best["sb3"], 2),
        "ratio": round(ratio, 3),
        "median_paired_ratio": round(statistics.median(paired), 3),
        "cpu_ratio": round(max(r["cpu_ups"] for r in runs["lagless"])
                           / max(r["cpu_ups"] for r in runs["sb3"]), 3),
        "updates": args.updates,
        "repeats": args.repeats,
        "warmup_updates": args.warmup,
        "fill": args.fill,
        "batch_size": SAC_BATCH,
        "threads": args.threads,
        "torch_threads_seen": torch.get_num_threads(),
        "network": SAC_NETWORK,
        "params": n_lagless,
        "lagless_mflop_per_update": round(flops["lagless"] / 1e6, 1),
        "sb3_mflop_per_update": round(flops["sb3"] / 1e6, 1),
        "lagless_ups_runs": [round(r["ups"], 2) for r in runs["lagless"]],
        "sb3_ups_runs": [round(r["ups"], 2) for r in runs["sb3"]],
        "lagless_cpu_ups_runs": [round(r["cpu_ups"], 2) for r in runs["lagless"]],
        "sb3_cpu_ups_runs": [round(r["cpu_ups"], 2) for r in runs["sb3"]],
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine_info(),
        "git": GIT_AT_START,
        "command": command_line(),
    }
    save_results(record, Path(args.out))
    verdict = "meets" if ratio >= 1.3 else "misses"
    print(f"\n{args.env} SAC: lagless {best['lagless']:.1f} updates/s, SB3 {best['sb3']:.1f} updates/s, "
          f"ratio {ratio:.2f}x ({verdict} the 1.3x goal; median of paired ratios "
          f"{record['median_paired_ratio']:.2f}x, CPU-time ratio {record['cpu_ratio']:.2f}x); "
          f"written to {args.out}")
    return 0


# --------------------------------------------------------------------------- results
def machine_info() -> dict:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    nproc = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    import stable_baselines3

    return {"nproc": nproc, "cpu": model, "python": platform.python_version(),
            "torch": torch.__version__, "sb3": stable_baselines3.__version__,
            "platform": platform.platform()}


def git_state() -> dict:
    """The commit and the locally modified files under src/ (read-only git calls)."""
    import subprocess

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], capture_output=True, text=True,
                                  check=True).stdout
        except (OSError, subprocess.CalledProcessError):
            return ""

    dirty = [line[3:] for line in git("status", "--porcelain", "--", "src").splitlines()]
    return {"commit": git("rev-parse", "--short", "HEAD").strip(), "modified_src": dirty}


def command_line() -> str:
    exe = sys.executable
    try:
        rel = os.path.relpath(exe)
        exe = rel if not rel.startswith("..") else exe
    except ValueError:
        pass
    return shlex.join([exe, *sys.argv])


def _same_settings(a: dict, b: dict) -> bool:
    if a.get("algo", "ppo") != b.get("algo", "ppo"):  # records before SAC are PPO's
        return False
    keys = ("env", "steps_requested", "num_envs", "rollout_steps", "threads", "network", "updates",
            "batch_size", "fill")
    same_precision = a.get("lagless_precision", "fp32") == b.get("lagless_precision", "fp32")
    return same_precision and all(a.get(k) == b.get(k) for k in keys)


def save_results(record: dict, out: Path) -> list[dict]:
    """Read, merge and write under a lock, so that two measurements in parallel lose no record."""
    import fcntl

    from lagless.runs import atomic_write_json

    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        records = []
        if out.exists():
            try:
                records = json.loads(out.read_text())
            except json.JSONDecodeError:
                print(f"warning: {out} is not valid JSON; starting it afresh", file=sys.stderr)
                records = []
        records = [r for r in records if not _same_settings(r, record)] + [record]
        records.sort(key=lambda r: (r.get("algo", "ppo"), r.get("env", ""),
                                    r.get("lagless_precision", "fp32") != "fp32",
                                    r.get("threads", 0), r.get("steps", 0)))
        atomic_write_json(out, records)
        write_markdown(records, out.with_suffix(".md"))
    return records


def write_markdown(records: list[dict], path: Path) -> None:
    sac = [r for r in records if r.get("algo", "ppo") == "sac"]
    records = [r for r in records if r.get("algo", "ppo") == "ppo"]
    lines = [
        "# Training throughput: lagless PPO vs Stable-Baselines3 PPO",
        "",
        "Generated by `benchmarks/throughput.py`. Same env wrappers, network "
        "(" + NETWORK + "), 16 envs, 128-step rollouts, 8 minibatches x 4 epochs; both "
        "libraries measured one after the other in one process with the same torch thread "
        "count. steps/s = agent steps / wall seconds around `train` (lagless, incl. its env "
        "construction, metrics and final checkpoint) or `model.learn` (SB3), after an "
        "untimed warm-up of each. Goal: lagless >= 1.5x SB3.",
        "",
        ("Steps/s are the fastest of the timed runs of each library (`runs`); `ratio` is "
         "their quotient (the headline), `paired` the median of the per-run ratios, and "
         "`CPU ratio` compares steps per CPU second of the process, which is less sensitive "
         "to other load on a shared machine."),
        "",
        ("`precision` is lagless's `--precision`: `bf16` runs its matmuls and convolutions in "
         "bfloat16 (weights, optimizer and losses in float32; AMX on this CPU); SB3 always runs "
         "float32."),
        "",
        ("| env | precision | lagless steps/s | SB3 steps/s | ratio | paired | CPU ratio | steps | runs "
         "| threads | machine | lagless code | date |"),
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for r in records:
        m = r.get("machine", {})
        g = r.get("git", {})
        code = g.get("commit", "?") + (" + local edits" if g.get("modified_src") else "")
        lines.append(
            f"| {r['env']} | {r.get('lagless_precision', 'fp32')} | {r['lagless_sps']:,.0f} | {r['sb3_sps']:,.0f} | "
            f"{r['ratio']:.2f}x | {r.get('median_paired_ratio', r['ratio']):.2f}x | "
            f"{r.get('cpu_ratio', float('nan')):.2f}x | {r['steps']:,} | "
            f"{r.get('repeats', 1)} | {r['threads']} | {m.get('nproc', '?')} CPUs, "
            f"{m.get('cpu', '?')} | {code} | {r['date']} |")
    lines += ["", "Commands (run from the repository root):", ""]
    for r in records:
        lines.append(f"- {r['env']} ({r.get('lagless_precision', 'fp32')}), {r['date']}: `{r['command']}`")
    lines.append("")
    if sac:
        lines += sac_markdown(sac)
    path.write_text("\n".join(lines))


def sac_markdown(records: list[dict]) -> list[str]:
    lines = [
        "## SAC: gradient updates per second, lagless vs Stable-Baselines3",
        "",
        "Generated by `benchmarks/throughput.py --algo sac`. Same networks (" + SAC_NETWORK + "), "
        "batch 256, lr 3e-4, automatic entropy tuning, one environment's replay filled with "
        "random steps (`fill`) in each library. Timed: only gradient updates (lagless "
        "`SACTrainer._update` calls, SB3 `model.train(gradient_steps=n, batch_size=256)`), each "
        "including its own replay sampling and target update; blocks of `updates` updates, "
        "interleaved with alternating order in one process after an untimed warm-up. "
        "Goal: lagless >= 1.3x SB3.",
        "",
        ("`precision` is lagless's `--precision` (`bf16`: matmuls in bfloat16, the critics' "
         "output layer, weights, optimizer and losses in float32); SB3 always runs float32."),
        "",
        ("Updates/s are the fastest block of each library (`runs`); `ratio` is their quotient, "
         "`paired` the median of the per-block ratios, `CPU ratio` compares updates per CPU "
         "second. `MFLOP` is the matrix-product work of one update (torch's FLOP counter), lagless / "
         "SB3: at equal arithmetic speed the ratio cannot exceed SB3's over lagless's."),
        "",
        ("| env | precision | lagless updates/s | SB3 updates/s | ratio | paired | CPU ratio | MFLOP per update "
         "| updates x runs | threads | machine | lagless code | date |"),
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for r in records:
        m, g = r.get("machine", {}), r.get("git", {})
        code = g.get("commit", "?") + (" + local edits" if g.get("modified_src") else "")
        lines.append(
            f"| {r['env']} | {r.get('lagless_precision', 'fp32')} | {r['lagless_ups']:.1f} | {r['sb3_ups']:.1f} | {r['ratio']:.2f}x | "
            f"{r['median_paired_ratio']:.2f}x | {r['cpu_ratio']:.2f}x | "
            f"{r.get('lagless_mflop_per_update', '?')} / {r.get('sb3_mflop_per_update', '?')} | "
            f"{r['updates']} x {r['repeats']} "
            f"| {r['threads']} | {m.get('nproc', '?')} CPUs, {m.get('cpu', '?')} | {code} | {r['date']} |")
    lines += ["", "Commands (run from the repository root):", ""]
    lines += [f"- {r['env']} (SAC, {r.get('lagless_precision', 'fp32')}), {r['date']}: `{r['command']}`"
              for r in records]
    lines.append("")
    return lines


# --------------------------------------------------------------------------- profile
def profile_lagless(env: str, steps: int, threads: int) -> None:
    import cProfile
    import io
    import pstats

    torch.set_num_threads(threads)
    run_lagless(env, 4096, threads)  # warm-up
    prof = cProfile.Profile(time.process_time)  # CPU time: robust to other load
    with tempfile.TemporaryDirectory(prefix="lagless-prof-") as tmp:
        config = lagless_config(env, steps, threads, str(Path(tmp) / "run"))
        t0, c0 = time.perf_counter(), time.process_time()
        prof.enable()
        result = train(config)
        prof.disable()
        wall, total = time.perf_counter() - t0, time.process_time() - c0
    print(f"lagless under cProfile: {result.global_step} steps in {wall:.1f}s wall, {total:.1f}s CPU "
          f"({result.global_step / wall:,.0f} steps/s with profiling overhead)")
    stats = pstats.Stats(prof)
    targets = {  # label: (end of the file path, function name), printed in this order
        "_ppo_update (update)": ("realtime/ppo.py", "_ppo_update"),
        "  evaluate_sequence (fwd)": ("realtime/agent.py", "evaluate_sequence"),
        "  loss.backward": ("torch/_tensor.py", "backward"),
        "  optimizer.step (Adam)": ("optim/adam.py", "step"),
        "  clip_grad_norm_": ("nn/utils/clip_grad.py", "clip_grad_norm_"),
        "gae (update)": ("realtime/ppo_loss.py", "gae"),
        "agent.act (rollout)": ("realtime/agent.py", "act"),
        "envs.step (rollout)": ("vector/sync_vector_env.py", "step"),
        "save_training_state": ("realtime/run_files.py", "save_training_state"),
        "run.finish (plot)": ("realtime/run_files.py", "finish"),
        "make_env": ("envs/make_env.py", "make_env"),
        "open_run": ("realtime/run_files.py", "open_run"),
    }
    parts = dict.fromkeys(targets, 0.0)
    for (filename, _line, func), (_cc, _nc, _tt, ct, _callers) in stats.stats.items():
        for label, (suffix, fn) in targets.items():
            if func == fn and filename.replace(os.sep, "/").endswith(suffix):
                parts[label] += ct
    print("\nsplit of train's CPU time (cumulative seconds, share; indented: inside the update):")
    for label, ct in parts.items():
        print(f"  {label:28s} {ct:7.2f}s  {100 * ct / total:5.1f}%")
    for sort in ("cumulative", "tottime"):
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats(sort).print_stats(30)
        print(f"\n--- top 30 by {sort} ---")
        print(buf.getvalue())


# --------------------------------------------------------------------------- main
def main(args: argparse.Namespace) -> int:
    global GIT_AT_START
    GIT_AT_START = git_state()  # the lagless code imported above is the code measured
    torch.set_num_threads(args.threads)
    if args.algo == "sac":
        return main_sac(args)
    if args.profile:
        profile_lagless(args.env, args.profile, args.threads)
        return 0

    n_lagless = lagless_param_count(args.env)
    sb3_probe = make_sb3_model(args.env, args.threads)
    n_sb3 = sum(p.numel() for p in sb3_probe.policy.parameters())
    sb3_probe.get_env().close()
    print(f"parameters: lagless {n_lagless:,}  SB3 {n_sb3:,}")
    if n_lagless != n_sb3:
        print("error: the two networks differ in size; fix the SB3 policy before comparing",
              file=sys.stderr)
        return 1

    print(f"warm-up: {args.warmup} steps of each ...", flush=True)
    run_lagless(args.env, args.warmup, args.threads)
    run_sb3(args.env, args.warmup, args.threads)

    lag_runs, sb3_runs = [], []
    for i in range(args.repeats):
        lag = run_lagless(args.env, args.steps, args.threads)
        print(f"[{i + 1}/{args.repeats}] lagless: {lag['steps']} steps in {lag['wall_s']:.1f}s = "
              f"{lag['sps']:,.0f} steps/s (train's own sps {lag['internal_sps']:,.0f}; "
              f"{lag['cpu_s']:.1f} CPU s = {lag['cpu_sps']:,.0f} steps per CPU s)", flush=True)
        sb3 = run_sb3(args.env, args.steps, args.threads)
        print(f"[{i + 1}/{args.repeats}] SB3:     {sb3['steps']} steps in {sb3['wall_s']:.1f}s = "
              f"{sb3['sps']:,.0f} steps/s ({sb3['cpu_s']:.1f} CPU s = {sb3['cpu_sps']:,.0f} steps per CPU s)",
              flush=True)
        lag_runs.append(lag)
        sb3_runs.append(sb3)

    # best of the repeats: on a shared machine other load can only slow a run down
    lag_sps = max(r["sps"] for r in lag_runs)
    sb3_sps = max(r["sps"] for r in sb3_runs)
    ratio = lag_sps / sb3_sps
    paired = [a["sps"] / b["sps"] for a, b in zip(lag_runs, sb3_runs)]
    record = {
        "env": args.env,
        "lagless_sps": round(lag_sps, 1),
        "sb3_sps": round(sb3_sps, 1),
        "ratio": round(ratio, 3),
        "steps": lag_runs[0]["steps"],
        "steps_requested": args.steps,
        "num_envs": NUM_ENVS,
        "rollout_steps": ROLLOUT_STEPS,
        "threads": args.threads,
        "torch_threads_seen": torch.get_num_threads(),
        "network": NETWORK,
        "lagless_precision": PRECISION,
        "params": n_lagless,
        "repeats": args.repeats,
        "median_paired_ratio": round(statistics.median(paired), 3),
        "lagless_sps_runs": [round(r["sps"], 1) for r in lag_runs],
        "sb3_sps_runs": [round(r["sps"], 1) for r in sb3_runs],
        "lagless_internal_sps": round(max(r["internal_sps"] for r in lag_runs), 1),
        "lagless_wall_s": [round(r["wall_s"], 2) for r in lag_runs],
        "sb3_wall_s": [round(r["wall_s"], 2) for r in sb3_runs],
        "lagless_cpu_s": [round(r["cpu_s"], 2) for r in lag_runs],
        "sb3_cpu_s": [round(r["cpu_s"], 2) for r in sb3_runs],
        "cpu_ratio": round(max(r["cpu_sps"] for r in lag_runs)
                           / max(r["cpu_sps"] for r in sb3_runs), 3),
        "sb3_steps": sb3_runs[0]["steps"],
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine_info(),
        "git": GIT_AT_START,
        "command": command_line(),
    }
    save_results(record, Path(args.out))
    verdict = "meets" if ratio >= 1.5 else "misses"
    print(f"\n{args.env}: lagless {lag_sps:,.0f} steps/s, SB3 {sb3_sps:,.0f} steps/s, "
          f"ratio {ratio:.2f}x ({verdict} the 1.5x goal; best run of each, median of paired "
          f"ratios {statistics.median(paired):.2f}x, CPU-time ratio {record['cpu_ratio']:.2f}x); "
          f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(ARGS))

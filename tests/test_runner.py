"""`lagless run`: the wall-clock runner's deadline misses, latency and errors.

The exact semantics are checked on a simulated clock with a stub agent whose action is the index
of the observation it depends on; the command line is checked on tiny trained agents with
assertions that hold on any machine (no wall-clock time is asserted).
"""

import json
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from lagless.cli import main
from lagless.envs.wrappers import ObsDelay
from lagless.realtime.policy import PolicyStep
from lagless.realtime.runner import Clock, run_realtime
from lagless.trainers import load_policy

# ---------------------------------------------------------------------------------------------
# simulated clock + stub agent: exact numbers


class SimClock(Clock):
    """Time moves only when someone sleeps: compute is free unless --layer-ms says otherwise."""

    def __init__(self):
        self.t = 0.0
        super().__init__(now=lambda: self.t, sleep=self._sleep, spin=0.0)

    def _sleep(self, dt):
        self.t += max(0.0, dt)


class Counter(gym.Env):
    """Observation: the number of steps taken. Records every action it receives."""

    observation_space = spaces.Box(0, 1e6, (1,), np.float32)
    action_space = spaces.Discrete(100_000, start=-2)  # -2: "depends on no observation", -1: never sent

    def __init__(self, log, on_step=None):
        self.t, self.log, self.on_step = 0, log, on_step

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        self.log.append([])
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.log[-1].append(int(action))
        self.t += 1
        if self.on_step:
            self.on_step()
        return np.array([self.t], np.float32), 1.0, False, False, {}


class StubPolicy:
    """A network with a fixed delay: its action is the observation value read ``min_delay`` steps ago."""

    kind, step, checkpoint, device = "stub", 0, None, "cpu"

    def __init__(self, arch, layers, min_delay, max_delay, obs_delay=0, on_step=None):
        self.arch, self.min_delay, self.max_delay = arch, min_delay, max_delay
        self.log = []

        def make_envs(n, seed=0):
            def one():
                env = Counter(self.log, on_step)
                return ObsDelay(env, obs_delay) if obs_delay else env
            return gym.vector.SyncVectorEnv([one] * n, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)

        self.config = SimpleNamespace(env="Counter", layers=layers, obs_delay=obs_delay, tau=1, seed=0,
                                      make_envs=make_envs)

    def initial_state(self, batch):
        return []

    def act(self, obs, state, episode_start, greedy=True):
        state = [] if bool(episode_start[0]) else list(state)
        state.append(int(obs[0, 0]))
        n = len(state) - 1
        a = state[n - self.min_delay] if n >= self.min_delay else -2
        return PolicyStep(np.array([a]), None, None), state


def _run(policy, **kw):
    kw = {"episodes": 1, "warmup": False, "trace": True, "clock": SimClock(), **kw}
    s = run_realtime(policy, **kw)
    return s, policy.log[-1]


def test_slow_instant_misses_deadlines_exactly():
    # 2 layers x 115 ms = 230 ms per action at 10 Hz: ready at 0.23, 0.46, 0.69, 0.92 s
    policy = StubPolicy("instant", layers=2, min_delay=0, max_delay=0)
    s, actions = _run(policy, hz=10, layer_ms=115, max_ticks=10)
    assert s["simulated_step_ms"] == pytest.approx(230)
    # default (Discrete start) until the first action; each action is repeated until the next one is ready
    assert actions == [-2, -2, 0, 0, 2, 2, 4, 4, 4, 6]
    fresh = [r["fresh"] for r in s["trace"][0]]
    assert fresh == [False, False, True, False, True, False, True, False, False, True]
    assert s["deadline_misses"] == 6 == fresh.count(False) and s["ticks"] == 10
    assert s["latency_ticks"] == {"min": 2, "max": 3, "mean": 2.25}
    assert s["latency_ms"]["max"] == pytest.approx(400) and s["latency_ms"]["p50"] == pytest.approx(300)
    assert s["achieved_hz"] == pytest.approx(10)
    assert s["per_episode"][0]["capped"]


def test_fast_instant_meets_every_deadline():
    policy = StubPolicy("instant", layers=8, min_delay=0, max_delay=0)
    s, actions = _run(policy, hz=50, layer_ms=2, max_ticks=20)  # 16 ms per action, 20 ms per tick
    assert s["deadline_misses"] == 0 and actions == list(range(20))
    assert s["latency_ticks"] == {"min": 0, "max": 0, "mean": 0.0}
    assert s["latency_ms"]["max"] == pytest.approx(20)  # an action takes effect at the next tick


def test_pipelined_steps_cost_one_layer():
    # the same 8 layers at the same rate: pipelined, a step costs 2 ms, not 16
    policy = StubPolicy("skip", layers=8, min_delay=1, max_delay=8)
    s, _ = _run(policy, hz=100, layer_ms=2, max_ticks=30)
    assert s["simulated_step_ms"] == pytest.approx(2) and s["deadline_misses"] == 0
    assert s["latency_ticks"]["min"] == s["latency_ticks"]["max"] == 1
    assert s["latency_ticks_oldest"]["min"] == s["latency_ticks_oldest"]["max"] == 8
    instant = StubPolicy("instant", layers=8, min_delay=0, max_delay=0)
    s, _ = _run(instant, hz=100, layer_ms=2, max_ticks=30)
    assert s["simulated_step_ms"] == pytest.approx(16) and s["deadline_misses"] >= 10


def test_chain_latency_is_its_delay_plus_the_sensor_delay():
    policy = StubPolicy("chain", layers=3, min_delay=3, max_delay=3, obs_delay=2)
    s, actions = _run(policy, hz=10, max_ticks=12)
    assert s["deadline_misses"] == 0 and s["decisions"] == 12
    # the action applied at step m was computed from the observation of step m - 3, which the sensor
    # showed 2 steps late (and as the first observation until then)
    assert actions == [-2, -2, -2] + [max(0, m - 5) for m in range(3, 12)]
    assert s["latency_ticks"] == {"min": 5, "max": 5, "mean": 5.0}
    assert s["latency_ms"]["mean"] == pytest.approx(600)


def test_the_simulators_own_time_is_not_the_agents():
    clock = SimClock()
    # 30 ms inside every environment step + 80 ms per action against 100 ms ticks: in series they
    # would miss, but the world runs on its own
    policy = StubPolicy("instant", layers=2, min_delay=0, max_delay=0, on_step=lambda: clock._sleep(0.03))
    s, actions = _run(policy, hz=10, layer_ms=40, max_ticks=10, clock=clock)
    assert s["deadline_misses"] == 0 and actions == list(range(10))
    assert s["env_ms"]["mean"] == pytest.approx(30) and s["achieved_hz"] == pytest.approx(10)
    assert s["wall_hz"] == pytest.approx(10 / 1.3, rel=1e-3)
    assert s["tick_late_ms"]["max"] == pytest.approx(0, abs=1e-9)


def test_episodes_restart_the_agent_and_the_clock():
    policy = StubPolicy("chain", layers=2, min_delay=2, max_delay=2)
    s, _ = _run(policy, hz=10, max_ticks=5, episodes=3)
    assert policy.log == [[-2, -2, 0, 1, 2]] * 3
    assert s["ticks"] == 15 and s["returns"] == [5.0] * 3 and s["deadline_misses"] == 0


# ---------------------------------------------------------------------------------------------
# the command line on trained agents (real clock)

TRAIN = ["train", "--env", "CartPole-v1", "--num-envs", "2", "--rollout-steps", "32", "--update-epochs", "1",
         "--hidden", "16", "--total-steps", "64", "--no-progress", "--no-tensorboard"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runner")
    assert main([*TRAIN, "--arch", "instant", "--layers", "2", "--run-dir", str(root / "instant")]) == 0
    assert main([*TRAIN, "--arch", "chain", "--layers", "3", "--obs-delay", "1", "--last-actions", "1",
                 "--run-dir", str(root / "chain")]) == 0
    return root


def _summary(path):
    return json.loads(path.read_text())


def test_cli_reports_misses_when_the_rate_is_impossible(runs, capsys):
    run = runs / "instant"
    # 2 layers x 20 ms = 40 ms per action against 10 ms ticks: no action can be on time
    assert main(["run", str(run), "--hz", "100", "--layer-ms", "20", "--max-ticks", "20", "--episodes", "1"]) == 0
    out = capsys.readouterr().out
    s = _summary(run / "run.json")
    assert "deadline misses" in out and s["ticks"] >= 8
    assert s["deadline_misses"] >= s["ticks"] // 2
    assert s["latency_ticks"]["min"] >= 3  # ready >= 4 ticks after its observation arrived


def test_cli_comfortable_rate_has_no_misses(runs, tmp_path):
    import torch

    out = tmp_path / "instant.json"
    threads = torch.get_num_threads()
    assert main(["run", str(runs / "instant"), "--hz", "20", "--max-ticks", "8", "--episodes", "1",
                 "--out", str(out)]) == 0
    s = _summary(out)
    assert s["deadline_misses"] == 0 and s["latency_ticks"]["max"] == 0 and not s["pipelined"]
    assert s["threads"] == 1 and torch.get_num_threads() == threads  # acting on one thread, then restored


def test_cli_chain_latency_includes_obs_delay(runs):
    run = runs / "chain"
    assert main(["run", str(run), "--hz", "20", "--max-ticks", "9", "--episodes", "1", "--no-greedy"]) == 0
    s = _summary(run / "run.json")
    assert s["pipelined"] and s["actor_min_delay"] == s["actor_max_delay"] == 3 and s["obs_delay"] == 1
    if s["ticks"] > 3:  # the chain's first 3 actions depend on no observation yet
        assert s["deadline_misses"] == 0
        assert s["latency_ticks"]["min"] == s["latency_ticks"]["max"] == 4


def test_cli_fused_passes_through(runs, capsys):
    import inspect

    rc = main(["run", str(runs / "chain"), "--hz", "20", "--max-ticks", "4", "--episodes", "1", "--fused",
               "--out", str(runs / "fused.json")])
    if "fused" in inspect.signature(load_policy).parameters:
        assert rc == 0 and _summary(runs / "fused.json")["fused"] is True
    else:
        assert rc == 2 and "--fused" in _one_line(capsys)


def _one_line(capsys):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("flags, needle", [
    (["--hz", "0"], "--hz must be a positive"),
    (["--hz", "-5"], "--hz must be a positive"),
    (["--hz", "10", "--layer-ms", "-1"], "--layer-ms must be >= 0"),
    (["--hz", "10", "--episodes", "0"], "--episodes must be >= 1"),
    (["--hz", "10", "--max-ticks", "0"], "--max-ticks must be >= 1"),
    (["--hz", "10", "--threads", "-1"], "--threads must be >= 0"),
])
def test_cli_bad_input_is_one_line(runs, capsys, flags, needle):
    assert main(["run", str(runs / "instant"), *flags]) == 2
    assert needle in _one_line(capsys)


def test_cli_run_without_checkpoint_is_one_line(runs, tmp_path, capsys):
    (tmp_path / "config.json").write_text((runs / "instant" / "config.json").read_text())
    assert main(["run", str(tmp_path), "--hz", "10"]) == 2
    assert "no checkpoint" in _one_line(capsys)
    assert main(["run", str(tmp_path / "missing"), "--hz", "10"]) == 2
    _one_line(capsys)


def test_box_actions_default_to_zero():
    from lagless.realtime.runner import default_action

    assert default_action(spaces.Box(-1, 1, (3,))).tolist() == [[0.0, 0.0, 0.0]]
    assert default_action(spaces.Box(1, 2, (2,))).tolist() == [[1.0, 1.0]]  # zero clipped into bounds
    assert default_action(spaces.Discrete(3)).tolist() == [0]

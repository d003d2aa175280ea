"""Builds the environments lagless trains on, from a Gymnasium id and the command-line flags.

One place decides the wrapper order and checks user input, so training, evaluation and the
CLI all see the same environment.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import numbers

import gymnasium as gym
from gymnasium import spaces

from lagless.envs.tmaze import register_tmaze
from lagless.envs.wrappers import ActionRepeat, Float32Obs, LastActions, ObsDelay, ObsHistory
from lagless.errors import LaglessError

MINATAR_PREFIX = "MinAtar/"
MUJOCO_TASKS = ("Ant", "HalfCheetah", "Hopper", "Humanoid", "HumanoidStandup", "InvertedDoublePendulum",
                "InvertedPendulum", "Pusher", "Reacher", "Swimmer", "Walker2d")
MUJOCO_VERSIONS = ("v4", "v5")  # v2/v3 need mujoco-py, which Gymnasium no longer ships
MINATAR_DEFAULT_MAX_FRAMES = 10_000

_minatar_registered = False
# id prefix -> (module that registers the ids on import, the extra that installs it)
IMPORT_ON_USE = {"popgym-": ("popgym", "ald"), "MiniGrid-": ("minigrid", "ald")}


def _register_minatar() -> None:
    """Imports MinAtar's Gymnasium ids on first use (MinAtar is an optional, GPL dependency)."""
    global _minatar_registered
    if _minatar_registered:
        return
    try:
        minatar_gym = importlib.import_module("minatar.gym")
    except ImportError as exc:
        raise LaglessError(
            f"MinAtar is not installed ({exc}); run pip install 'lagless[minatar]' to use "
            "MinAtar environments."
        ) from exc
    if not any(env_id.startswith(MINATAR_PREFIX) for env_id in gym.registry):
        minatar_gym.register_envs()
    _minatar_registered = True


def _check_env_id(env_id: str) -> None:
    """Raises LaglessError unless ``env_id`` names a registered Gymnasium environment."""
    if not isinstance(env_id, str) or not env_id:
        raise LaglessError(
            f"environment id must be a non-empty string, got {env_id!r} "
            "(e.g. MinAtar/Breakout-v1, CartPole-v1)"
        )
    name = env_id
    if ":" in env_id:  # Gymnasium's "module:EnvId" form imports the module that registers it
        module, name = env_id.split(":", 1)
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            raise LaglessError(
                f"unknown environment '{env_id}': cannot import module '{module}' ({exc}); "
                "install the package that provides it."
            ) from exc
    if name.startswith(MINATAR_PREFIX):
        _register_minatar()
    register_tmaze(name)
    for prefix, (module, extra) in IMPORT_ON_USE.items():
        if name.startswith(prefix):
            try:
                importlib.import_module(module)
            except ImportError as exc:
                raise LaglessError(f"environment '{env_id}' needs {module} ({exc}); run "
                                   f"pip install 'lagless[{extra}]'") from exc
    task, _, version = name.rpartition("-")
    if task in MUJOCO_TASKS and version not in MUJOCO_VERSIONS:
        raise LaglessError(
            f"unknown environment '{env_id}': MuJoCo tasks run as {task}-v5 (or -v4); "
            f"version {version} needs the old mujoco-py, which is not supported"
        )
    if name not in gym.registry:
        close = difflib.get_close_matches(name, list(gym.registry), n=1)
        hint = f"did you mean {close[0]}?" if close else "e.g. MinAtar/Breakout-v1, CartPole-v1"
        raise LaglessError(
            f"unknown environment '{env_id}': not a registered Gymnasium id ({hint})"
        )


def _box_like(space: spaces.Space) -> bool:
    """A Box, or a Dict of Boxes: what lagless's networks read without flattening."""
    if isinstance(space, spaces.Dict):
        return all(isinstance(s, spaces.Box) for s in space.spaces.values())
    return isinstance(space, spaces.Box)


def _check_flags(**flags: int) -> None:
    for flag, (value, minimum) in flags.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
            raise LaglessError(f"--{flag.replace('_', '-')} must be >= {minimum}, got {value}")


def make_single_env(
    env_id: str,
    *,
    tau: int = 1,
    last_actions: int = 0,
    obs_history: int = 0,
    max_episode_frames: int | None = None,
    render_mode: str | None = None,
    obs_delay: int = 0,
) -> gym.Env:
    """Makes one environment with lagless's wrappers, inner to outer:

    base env -> TimeLimit(frames) -> float32 cast -> ActionRepeat(tau) [if tau > 1]
    -> ObsDelay(obs_delay) [if > 0] -> ObsHistory(obs_history) [if > 0]
    -> LastActions(last_actions) [if > 0].

    The time limit counts environment frames, not agent steps.  MinAtar ids get 10000 frames
    unless ``max_episode_frames`` is given; other ids keep their registered limit unless it is.
    Box observations are cast to float32 (MinAtar images stay (H, W, C)).
    """
    _check_flags(tau=(tau, 1), last_actions=(last_actions, 0), obs_history=(obs_history, 0),
                 obs_delay=(obs_delay, 0))
    if max_episode_frames is not None:
        _check_flags(max_episode_frames=(max_episode_frames, 1))
    _check_env_id(env_id)

    is_minatar = env_id.split(":", 1)[-1].startswith(MINATAR_PREFIX)
    if is_minatar and max_episode_frames is None:
        max_episode_frames = MINATAR_DEFAULT_MAX_FRAMES
    kwargs = {} if render_mode is None else {"render_mode": render_mode}
    try:
        # gym.make puts TimeLimit right on the base env, replacing any registered limit; the
        # float32 cast above it is elementwise, so this equals "cast, then TimeLimit".
        env = gym.make(
            env_id,
            max_episode_steps=max_episode_frames,
            disable_env_checker=True if is_minatar else None,
            **kwargs,
        )
    except (gym.error.DependencyNotInstalled, ImportError) as exc:
        task = env_id.split(":", 1)[-1].rpartition("-")[0]
        extra = " (pip install 'lagless[mujoco]')" if task in MUJOCO_TASKS else ""
        raise LaglessError(
            f"environment '{env_id}' needs a package that is not installed{extra}: {exc}"
        ) from exc

    if env_id.split(":", 1)[-1].startswith("MiniGrid-"):
        from minigrid.wrappers import ImgObsWrapper

        env = ImgObsWrapper(env)  # the (7, 7, 3) partial view; the mission text is constant
    elif not _box_like(env.observation_space):
        env = gym.wrappers.FlattenObservation(env)  # Discrete/MultiDiscrete/Tuple: one-hot vectors
    space = env.observation_space
    if isinstance(space, spaces.Box) and space.dtype != "float32":
        env = Float32Obs(env)
    if tau > 1:
        env = ActionRepeat(env, tau)
    if obs_delay > 0:
        env = ObsDelay(env, obs_delay)
    if obs_history > 0:
        env = ObsHistory(env, obs_history)
    if last_actions > 0:
        env = LastActions(env, last_actions)
    return env


def make_env(
    env_id: str,
    *,
    num_envs: int = 1,
    tau: int = 1,
    last_actions: int = 0,
    obs_history: int = 0,
    seed: int = 0,
    max_episode_frames: int | None = None,
    obs_delay: int = 0,
) -> gym.vector.VectorEnv:
    """Makes ``num_envs`` copies of :func:`make_single_env` in a same-step-autoreset SyncVectorEnv.

    A step that ends an episode returns the first observation of the next episode; the last
    observation of the finished one is in ``infos["final_obs"]`` (mask ``infos["_final_obs"]``).

    Seeding: this seeds the action spaces with ``seed``; the caller must then call
    ``envs.reset(seed=seed)``, which seeds sub-environment ``i`` with ``seed + i``.  Two vector
    envs built and reset with the same seed replay identically for the same actions.
    """
    _check_flags(num_envs=(num_envs, 1))
    make_one = functools.partial(
        make_single_env,
        env_id,
        tau=tau,
        last_actions=last_actions,
        obs_history=obs_history,
        max_episode_frames=max_episode_frames,
        obs_delay=obs_delay,
    )
    envs = gym.vector.SyncVectorEnv(
        [make_one] * num_envs, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
    )
    envs.action_space.seed(seed)
    envs.single_action_space.seed(seed)
    for i, sub in enumerate(envs.envs):
        sub.action_space.seed(seed + i)
    return envs

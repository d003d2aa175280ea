"""``attribute``: explain an agent's actions by the behaviours that discovery found.

Reads a discover OUT folder, reloads its dataset, gets the agent's action distribution at
the query states (a trained lagless agent, the probabilities recorded with the data, or a
policy cloned from all the data), clones one policy per behaviour and one per behaviour left
out, scores both attribution methods, and writes ``OUT/attribution.json`` and the report.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lagless import __version__
from lagless.config import option
from lagless.errors import LaglessError
from lagless.explain.episodes import EpisodeData

log = logging.getLogger(__name__)


@dataclass
class AttributeConfig:
    """How many states to explain and how the cloned policies are trained (flags and API alike)."""

    queries: int = option(256, "query states sampled (seeded) from the dataset", metavar="N")
    episode: int | None = option(None, "explain every step of this episode instead of sampled "
                                       "queries", metavar="E")
    updates: int = option(1000, "Adam updates per cloned policy (1 + 2 per behaviour are trained)",
                          metavar="U")
    batch_size: int = option(256, "steps per update of a cloned policy", metavar="B")
    hidden: int = option(64, "width of the cloned policies' hidden layers", metavar="H")
    seed: int = option(0, "seed for the query sample and the cloned policies", metavar="X")
    progress: bool = option(True, "show progress bars")

    def validate(self) -> AttributeConfig:
        for name in ("queries", "updates", "batch_size", "hidden"):
            if getattr(self, name) < 1:
                raise LaglessError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        return self


# -- the discover OUT folder ------------------------------------------------------------------
def check_out_dir(out_dir: str | Path) -> Path:
    out = Path(out_dir)
    if not out.is_dir():
        raise LaglessError(f"{out} is not a folder: give the OUT folder that 'lagless explain discover' wrote")
    return out


def read_out_json(out: Path, name: str, default: Any = None) -> Any:
    """``OUT/name`` parsed, ``default`` if absent; a damaged file is a user error."""
    path = out / name
    if not path.exists():
        return default
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise LaglessError(f"{path} is not valid JSON ({e}): rerun 'lagless explain discover'") from None


def load_labels(out: Path) -> np.ndarray:
    """(N,) int64 behaviour id per step from ``OUT/labels.npy``."""
    path = out / "labels.npy"
    if not path.exists():
        raise LaglessError(f"{out} has no labels.npy: run 'lagless explain discover DATA --out {out}' first")
    try:
        labels = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise LaglessError(f"{path} is not a readable .npy file ({e}): rerun discover") from None
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer) or (len(labels) and labels.min() < 0):
        raise LaglessError(f"{path} must hold one non-negative integer label per step, got "
                           f"{labels.dtype} {labels.shape}: rerun discover")
    return labels.astype(np.int64)


def dataset_source(out: Path, data: str | Path | EpisodeData | None) -> str | None:
    """The dataset path or id: ``data`` if given as one, else the one ``OUT/discover.json`` names."""
    if isinstance(data, str | Path):
        return str(data)
    if isinstance(data, EpisodeData):
        return data.meta.get("source") or (read_out_json(out, "discover.json", {}) or {}).get("data")
    return (read_out_json(out, "discover.json", {}) or {}).get("data")


def load_out_dataset(out: Path, data: str | Path | EpisodeData | None) -> EpisodeData:
    """``data`` itself, or the dataset it (or ``OUT/discover.json``) names, loaded with E1's loader."""
    if isinstance(data, EpisodeData):
        return data
    source = dataset_source(out, data)
    if not source:
        raise LaglessError(f"{out}/discover.json names no dataset: give it with --data DATA")
    from lagless.explain.datasets import load_dataset

    return load_dataset(source)


# -- queries and embeddings ---------------------------------------------------------------------
def select_queries(data: EpisodeData, queries: int, episode: int | None, seed: int) -> np.ndarray:
    """Sorted global step indices: every step of ``episode``, or ``queries`` steps sampled with ``seed``."""
    if episode is not None:
        bounds = data.episode_bounds()
        if not 0 <= episode < len(bounds):
            raise LaglessError(f"--episode {episode} is out of range: the dataset has episodes 0..{len(bounds) - 1}")
        return np.arange(*bounds[episode], dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(data.num_steps, size=min(queries, data.num_steps), replace=False)).astype(np.int64)


def embedding_distances(out: Path, data: EpisodeData, labels: np.ndarray, num_behaviours: int,
                        progress: bool) -> tuple[list[float | None], str | None]:
    """Per behaviour k: L2 distance between the mean VQ-VAE embedding of all steps and of the steps
    outside k; all None with a note when the model is missing."""
    none: list[float | None] = [None] * num_behaviours
    if not (out / "model.safetensors").exists():
        note = f"no VQ-VAE model in {out}: embedding distances skipped"
        log.info(note)
        return none, note
    import torch
    from tqdm.auto import tqdm

    from lagless.explain.vqvae import load_vqvae
    from lagless.explain.windows import episode_windows, iter_window_batches

    model = load_vqvae(out)
    window = int(model.config.window)
    starts, lengths = episode_windows(data, window)
    sums: np.ndarray | None = None
    batches = iter_window_batches(data, starts, lengths, window, batch_size=64)
    for batch in tqdm(batches, desc="embeddings", unit="batch", disable=not progress):
        with torch.inference_mode():
            emb, _ = model.encode(batch)
        mask = batch["mask"].numpy()
        e = emb.detach().numpy()[mask].astype(np.float64)
        if sums is None:
            sums = np.zeros((num_behaviours, e.shape[1]))
        owner = labels[batch["step_index"].numpy()[mask]]
        for k in np.unique(owner):  # K small sums: much faster than np.add.at
            sums[k] += e[owner == k].sum(axis=0)
    if sums is None:
        return none, "the dataset has no windows: embedding distances skipped"
    counts = np.bincount(labels, minlength=num_behaviours).astype(np.float64)
    total, n = sums.sum(axis=0), counts.sum()
    out_list: list[float | None] = []
    for k in range(num_behaviours):
        rest = n - counts[k]
        out_list.append(None if rest == 0 else float(np.linalg.norm(total / n - (total - sums[k]) / rest)))
    return out_list, None


# -- the pipeline ---------------------------------------------------------------------------------
def _json_safe(x: Any) -> Any:
    """Nested dicts, lists and arrays as plain JSON values; NaN and inf become None."""
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple | np.ndarray):
        return [_json_safe(v) for v in x]
    if isinstance(x, np.bool_ | bool):
        return bool(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, float | np.floating):
        return float(x) if math.isfinite(x) else None
    return x


def _action_scale(data: EpisodeData) -> float:
    """Typical size of an action (1 for discrete): the scale of the continuous similarity kernel."""
    if data.discrete_actions:
        return 1.0
    return float(np.asarray(data.actions, np.float64).std(axis=0).mean()) or 1.0


def _agent(out: Path, data, dataset: EpisodeData, steps: np.ndarray, policy_dir, recorded: bool,
           checkpoint, progress: bool):
    """The agent's outputs at ``steps`` (None for --bc: the full-data clone is the agent)."""
    if policy_dir is not None:
        from lagless.explain.agent_policy import agent_outputs

        return agent_outputs(policy_dir, dataset, steps, checkpoint=checkpoint, progress=progress)
    if recorded:
        from lagless.explain.agent_policy import recorded_outputs

        source = dataset_source(out, data)
        if not source:
            raise LaglessError("--recorded needs the dataset's file or id: give it with --data DATA")
        return recorded_outputs(source, dataset, steps)
    return None


def _per_query(dataset: EpisodeData, labels: np.ndarray, steps: np.ndarray, agent_dist: np.ndarray,
               agent_values: np.ndarray | None, scores) -> list[dict]:
    episode_ids = dataset.episode_ids()
    agent_actions = np.argmax(agent_dist, axis=1) if dataset.discrete_actions else agent_dist
    return [{
        "step": int(s), "episode": int(episode_ids[s]), "label": int(labels[s]),
        "data_action": dataset.actions[s].tolist(), "agent_action": agent_actions[i].tolist(),
        "agent_value": None if agent_values is None else float(agent_values[i]),
        "similarity": {"behaviour": int(scores.by_similarity[i]), "scores": scores.similarity[i]},
        "counterfactual": {"behaviour": int(scores.by_counterfactual[i]), "action_change": scores.action_change[i],
                           "value_change": scores.value_change[i], "greedy_changed": scores.greedy_changed[i]},
    } for i, s in enumerate(steps)]


def attribute(out_dir: str | Path, *, policy_dir: str | Path | None = None, bc: bool = False,
              recorded: bool = False, data: str | Path | EpisodeData | None = None, queries: int = 256,
              episode: int | None = None, seed: int = 0, updates: int = 1000, batch_size: int = 256,
              hidden: int = 64, checkpoint: str | Path | None = None, progress: bool = True) -> dict:
    """Attribute the agent's actions at the query states to behaviours; writes OUT/attribution.json.

    The agent is exactly one of: ``policy_dir`` (a lagless run), ``recorded`` (the
    ``policy_probs`` saved with the dataset) or ``bc`` (a policy cloned from all the data).
    ``data`` (a path, id or ``EpisodeData``) overrides the dataset ``OUT/discover.json`` names.
    """
    from lagless.explain import attribution as methods
    from lagless.explain.bc_policy import GAMMA, CloningData, clone_policies
    from lagless.explain.report import write_report
    from lagless.runs import atomic_write_json

    if sum([policy_dir is not None, bool(bc), bool(recorded)]) != 1:
        raise LaglessError("give exactly one agent: --policy DIR, --bc or --recorded")
    config = AttributeConfig(queries=queries, episode=episode, updates=updates, batch_size=batch_size,
                             hidden=hidden, seed=seed, progress=progress).validate()
    out = check_out_dir(out_dir)
    labels = load_labels(out)
    dataset = load_out_dataset(out, data)
    if len(labels) != dataset.num_steps:
        raise LaglessError(f"{out}/labels.npy has {len(labels)} labels but the dataset {dataset.num_steps} "
                           "steps: give the dataset discover ran on (--data)")
    num_behaviours = max(len(read_out_json(out, "behaviours.json", []) or []), int(labels.max()) + 1)
    if num_behaviours < 2:
        raise LaglessError(f"{out} holds {num_behaviours} behaviour: attribution needs at least 2")
    steps = select_queries(dataset, queries, episode, seed)
    # the agent first, so that a policy that does not fit the data fails before any training
    agent = _agent(out, data, dataset, steps, policy_dir, recorded, checkpoint, progress)

    source = CloningData.from_episodes(dataset, num_actions=agent.num_actions if agent else None, seed=seed)
    members = [np.flatnonzero(labels == k) for k in range(num_behaviours)]
    cloned = clone_policies(source, members, steps, updates=updates, batch_size=batch_size, hidden=hidden,
                            seed=seed, progress=progress)
    agent_dist = cloned.full if agent is None else agent.probs
    agent_values = cloned.full_values if agent is None else agent.values
    discrete = dataset.discrete_actions
    scores = methods.score(agent_dist, cloned, discrete, _action_scale(dataset))
    embedding, note = embedding_distances(out, dataset, labels, num_behaviours, progress)
    summary = methods.behaviour_summary(scores, [len(m) for m in members], embedding)
    result = _json_safe({
        "settings": {
            "agent": "policy" if policy_dir is not None else ("recorded" if recorded else "bc"),
            "policy_dir": None if policy_dir is None else str(policy_dir),
            "data": dataset_source(out, data), **dataclasses.asdict(config), "gamma": GAMMA,
            "similarity": methods.SIMILARITY_DISCRETE if discrete else methods.SIMILARITY_CONTINUOUS,
            "action_change": methods.DISTANCE_DISCRETE if discrete else methods.DISTANCE_CONTINUOUS,
            "embedding_distance": "L2 between the mean VQ-VAE embedding of all steps and of the steps outside k",
            "lagless_version": __version__,
        },
        "num_queries": len(steps), "num_behaviours": num_behaviours,
        "most_attributed": {method: int(np.argmax([b[f"{method}_frequency"] for b in summary]))
                            for method in ("similarity", "counterfactual")},
        "embedding_note": note,
        "behaviours": summary,
        "queries": _per_query(dataset, labels, steps, agent_dist, agent_values, scores),
    })
    atomic_write_json(out / "attribution.json", result)
    write_report(out, data=dataset)
    return result

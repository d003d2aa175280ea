"""Behaviour discovery end to end (Rishav et al. 2025): train the VQ-VAE, code every step,
cluster the code graph into behaviours, cut segments, and write the OUT folder.

OUT holds labels.npy, codes.npy, segments.json, behaviours.json, code_graph.json,
discover.json, model.safetensors + model.json, metrics.csv (training curves) and report.html.
Every file is written atomically, so a reader never sees half of one. ``codes.npy`` holds
the raw VQ code of each step; ``labels.npy`` the behaviour of its code after short runs are
smoothed away (``min_segment_length``), so that segments are the runs of ``labels.npy``.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import time
from pathlib import Path

import numpy as np
import torch

from lagless import __version__
from lagless.errors import LaglessError
from lagless.explain.code_graph import build_code_graph
from lagless.explain.confidence import discovery_confidence
from lagless.explain.discover_config import DiscoverConfig
from lagless.explain.episodes import EpisodeData
from lagless.explain.places import find_places
from lagless.explain.policy_refine import RefineSettings, refine_behaviours
from lagless.explain.policy_split import SplitSettings, split_behaviours
from lagless.explain.segments import behaviour_stats, find_segments, smooth_labels
from lagless.explain.spectral import relabel_by_size
from lagless.explain.step_encoding import encode_steps
from lagless.explain.vqvae import save_vqvae
from lagless.explain.vqvae_train import perplexity, train_vqvae
from lagless.runs import MetricsLogger, atomic_write_bytes, atomic_write_json

logger = logging.getLogger(__name__)

OUT_FILES = ("labels.npy", "codes.npy", "segments.json", "behaviours.json", "code_graph.json",
             "discover.json", "model.safetensors", "model.json", "metrics.csv", "report.html")


def check_discoverable(data: EpisodeData, config: DiscoverConfig) -> None:
    """Raise LaglessError if the data cannot train a model (too short, constant, not finite)."""
    if data.num_steps < config.window:
        raise LaglessError(f"the dataset has {data.num_steps} steps, fewer than one window of "
                           f"{config.window}: record more steps or pass a smaller --window")
    if len(data.observations) != data.num_steps or len(data.rewards) != data.num_steps:
        raise LaglessError("observations, actions and rewards must have one row per step")
    sample = data.observations[:: max(1, data.num_steps // 10_000)]
    same_obs = bool(np.all(sample == sample[:1]))
    same_act = bool(np.all(data.actions == data.actions[:1]))
    if same_obs and same_act:
        raise LaglessError("every step has the same observation and action: there are no behaviours "
                           "to discover; record episodes with some variation")
    if np.issubdtype(data.observations.dtype, np.floating) and not np.isfinite(sample).all():
        raise LaglessError("the observations contain NaN or infinite values: clean the dataset first")


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def discover(data: EpisodeData, out_dir: str | Path, config: DiscoverConfig | None = None, *,
             source: str | None = None) -> dict:
    """Discover behaviours in ``data``, write OUT (see module doc) and return discover.json's dict.

    ``source`` is the dataset's absolute path or Minari id, recorded in discover.json.
    Runs with ``config.threads`` torch threads and restores the previous count afterwards.
    """
    config = config or DiscoverConfig()
    config.validate()
    check_discoverable(data, config)
    if Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise LaglessError(f"{out_dir} is a file, not a folder: give --out a folder to write into")
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        return _discover(data, Path(out_dir), config, source)
    finally:
        torch.set_num_threads(threads)


def _refine(data: EpisodeData, anchors: np.ndarray, labels: np.ndarray, config: DiscoverConfig):
    """Labels relabelled as policies (``policy_refine``), anchored to ``anchors`` (the codes,
    or codes and state clusters where behaviours start from places), then split, smoothed
    and numbered by size."""
    settings = RefineSettings(switch_cost=config.switch_cost, seed=config.seed)
    refined, info = refine_behaviours(data, anchors, labels, settings)
    if config.split:
        split = SplitSettings(min_gain=config.split_gain, min_fraction=config.min_behaviour_fraction,
                              max_behaviours=config.max_behaviours,
                              min_segment_length=config.min_segment_length, seed=config.seed)
        refined, info["split"] = split_behaviours(data, anchors, refined, settings, split)
    refined = smooth_labels(refined, data.episode_ids(), config.min_segment_length)
    refined = relabel_by_size(refined, np.ones(len(refined)))
    info["behaviours"] = int(refined.max()) + 1
    logger.info("refined as policies: %d behaviours (from %d)", info["behaviours"], info["behaviours_before"])
    if "split" in info:
        logger.info("split as policies: %d behaviours tested, %d splits kept",
                    len(info["split"]["tests"]), info["split"]["behaviours"] - info["split"]["behaviours_before"])
    return refined, info


def _colour_graph(graph, codes: np.ndarray, labels: np.ndarray) -> None:
    """Each code of the graph gets the behaviour most of its steps have (for the report)."""
    k = int(labels.max()) + 1
    counts = np.zeros((len(graph.codes), k))
    np.add.at(counts, (np.searchsorted(graph.codes, codes), labels), 1.0)
    graph.behaviour_of_code = counts.argmax(1)
    graph.num_behaviours = k


def _discover(data: EpisodeData, out: Path, config: DiscoverConfig, source: str | None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()

    with MetricsLogger(out, tensorboard=config.tensorboard) as metrics:
        updates = config.updates_for(data.num_steps)
        model = train_vqvae(data, config, metrics)
        save_vqvae(model, out)
        encoding = encode_steps(model, data, overlap=config.label_overlap,
                                batch_size=config.label_batch_size, progress=config.progress)
        codes = encoding.codes
        used = int((np.bincount(codes, minlength=config.codebook_size) > 0).sum())
        summary = {
            "data": source if source is not None else data.meta.get("source"),
            "num_steps": data.num_steps,
            "num_episodes": len(data.episode_bounds()),
            "codebook_size": config.codebook_size,
            "codes_in_use": used,
            "codebook_usage": used / config.codebook_size,
            "perplexity": perplexity(codes, config.codebook_size),
            "reconstruction_mse": encoding.reconstruction_mse(),
        }
        metrics.log(updates, {f"explain/{k}": summary[k] for k in
                                     ("codebook_usage", "perplexity", "reconstruction_mse")})

    episode_ids = data.episode_ids()
    lags = config.lags()
    graph = build_code_graph(codes, episode_ids, model.quantizer.codebook.numpy().astype(np.float64),
                             similarity_weight=config.similarity_weight, lags=lags,
                             behaviours=config.behaviours,
                             max_behaviours=config.max_behaviours,
                             min_fraction=config.min_behaviour_fraction, seed=config.seed)
    places = None
    if config.places and config.behaviours is None:
        places = find_places(data, lags, max_places=config.max_behaviours,
                             min_fraction=config.min_behaviour_fraction, seed=config.seed)
    from_places = places is not None and places.found
    start, anchors, eigenvalues = graph.label_codes(codes), codes, graph.eigenvalues
    if from_places:
        logger.info("the states fall into %d places that trajectories keep to (eigengap %.2f): "
                    "behaviours start from them", places.count, places.gap)
        start, eigenvalues = places.labels, places.eigenvalues
        anchors = codes * (int(places.clusters.max()) + 1) + places.clusters  # code and state cluster
    start_behaviours = int(start.max()) + 1
    labels = smooth_labels(start, episode_ids, config.min_segment_length)
    refined = None
    if config.refine:
        labels, refined = _refine(data, anchors, labels, config)
    if config.refine or from_places:
        _colour_graph(graph, codes, labels)
    segments = find_segments(labels, episode_ids)
    confidence = discovery_confidence(eigenvalues, config.max_behaviours,
                                      config.behaviours is not None, start_behaviours, segments)
    for warning in confidence["warnings"]:
        logger.warning(warning)
    summary.update({"num_behaviours": graph.num_behaviours, "num_segments": len(segments),
                    "confidence": confidence, "refine": refined, "updates": updates,
                    "places": None if places is None else places.to_json(),
                    "transition_lags": lags,
                    "seconds": round(time.perf_counter() - began, 2),
                    "config": dataclasses.asdict(config), "lagless_version": __version__})

    atomic_write_bytes(out / "codes.npy", _npy_bytes(codes))
    atomic_write_bytes(out / "labels.npy", _npy_bytes(labels.astype(np.int64)))
    atomic_write_json(out / "segments.json", segments.to_json())
    atomic_write_json(out / "behaviours.json",
                      behaviour_stats(data, labels, segments, graph.num_behaviours))
    atomic_write_json(out / "code_graph.json", graph.to_json())
    atomic_write_json(out / "discover.json", summary)
    from lagless.explain.report import write_report

    write_report(out)
    logger.info("discovered %d behaviours in %d steps; written to %s",
                graph.num_behaviours, data.num_steps, out)
    return summary


"""The report's figures, each returned as a base64 PNG so the HTML needs no other file.

Every function takes plain arrays and lists (no OUT folder, no dataset loader), draws with
matplotlib's Agg backend and closes its figure.
"""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib import colors as mcolors
from matplotlib.patches import Patch

DPI = 80
PADDING = "#ffffff"


def behaviour_colours(count: int) -> list[str]:
    """One distinct hex colour per behaviour (tab10, then tab20, then evenly spaced hues)."""
    if count <= 20:
        cmap = plt.get_cmap("tab10" if count <= 10 else "tab20")
        return [mcolors.to_hex(cmap(i)) for i in range(count)]  # integer index: the i-th colour
    cmap = plt.get_cmap("hsv")
    return [mcolors.to_hex(cmap(i / count)) for i in range(count)]


def figure_png(fig) -> str:
    """The figure as a base64 PNG string; the figure is closed."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def timeline(labels: np.ndarray, bounds: np.ndarray, colours: list[str], max_episodes: int = 20) -> str:
    """One coloured band per episode (the first ``max_episodes``): the behaviour at every step."""
    bounds = bounds[:max_episodes]
    width = int((bounds[:, 1] - bounds[:, 0]).max()) if len(bounds) else 1
    palette = np.array([mcolors.to_rgb(c) for c in colours] + [mcolors.to_rgb(PADDING)])
    image = np.full((len(bounds), width), len(colours), dtype=np.int64)
    for row, (start, end) in enumerate(bounds):
        image[row, : end - start] = labels[start:end]
    fig, ax = plt.subplots(figsize=(9, 0.6 + 0.3 * max(len(bounds), 1)))
    ax.imshow(palette[image], aspect="auto", interpolation="nearest")
    ax.set_yticks(range(len(bounds)))
    ax.set_yticklabels([str(i) for i in range(len(bounds))], fontsize=7)
    ax.set_xlabel("step within episode")
    ax.set_ylabel("episode")
    handles = [Patch(color=c, label=f"Behaviour {k}") for k, c in enumerate(colours)]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
    return figure_png(fig)


def graph_layout(weights: np.ndarray) -> np.ndarray:
    """(n, 2) node positions: the graph's spectral embedding, or a circle if it is too small."""
    n = len(weights)
    if n >= 4:
        degree = weights.sum(axis=1)
        inv = np.where(degree > 0, 1.0 / np.sqrt(np.maximum(degree, 1e-12)), 0.0)
        laplacian = np.eye(n) - inv[:, None] * weights * inv[None, :]
        _, vectors = np.linalg.eigh(laplacian)
        pos = vectors[:, 1:3] * inv[:, None] if degree.all() else vectors[:, 1:3]
        spread = pos.std(axis=0)
        if (spread > 1e-9).all() and len(np.unique(np.round(pos, 6), axis=0)) > n // 2:
            return (pos - pos.mean(axis=0)) / spread
    angles = 2 * np.pi * np.arange(n) / max(n, 1)
    return np.stack([np.cos(angles), np.sin(angles)], axis=1)


def code_graph(codes: list[int], weights: np.ndarray, behaviour_of_code: list[int], colours: list[str]) -> str:
    """Codes as nodes coloured by behaviour; edge width proportional to the edge weight."""
    weights = np.asarray(weights, dtype=np.float64)
    pos = graph_layout(weights)
    top = weights.max() if weights.size else 0.0
    fig, ax = plt.subplots(figsize=(6, 5))
    if top > 0:
        for i, j in zip(*np.nonzero(np.triu(weights, 1) > 0.05 * top)):
            w = weights[i, j] / top
            ax.plot(pos[[i, j], 0], pos[[i, j], 1], color="#888888", linewidth=0.3 + 3.5 * w,
                    alpha=0.2 + 0.5 * w, zorder=1)
    node_colours = [colours[b] if 0 <= b < len(colours) else "#cccccc" for b in behaviour_of_code]
    ax.scatter(pos[:, 0], pos[:, 1], c=node_colours, s=120, edgecolors="black", linewidths=0.5, zorder=2)
    if len(codes) <= 64:
        for (x, y), code in zip(pos, codes):
            ax.annotate(str(code), (x, y), ha="center", va="center", fontsize=6, zorder=3)
    ax.set_axis_off()
    ax.set_title("code graph (layout: spectral embedding)", fontsize=9)
    return figure_png(fig)


def eigengaps(gaps: dict[str, float], best: int | None, runner_up: int | None) -> str:
    """Bars of the eigengap at each candidate number of behaviours; the best and runner-up marked."""
    ks = [int(k) for k in gaps]
    fig, ax = plt.subplots(figsize=(5, 2.6))
    shade = ["#1f77b4" if k == best else "#ff7f0e" if k == runner_up else "#bbbbbb" for k in ks]
    ax.bar(ks, list(gaps.values()), color=shade)
    ax.set_xticks(ks)
    ax.set_xlabel("number of behaviours K")
    ax.set_ylabel("eigengap")
    ax.set_title("eigengap per K (blue: chosen, orange: runner-up)", fontsize=9)
    return figure_png(fig)


def grid_frames(frames: np.ndarray, max_frames: int = 8) -> str:
    """Frames of an (H, W, C) grid game, each cell coloured by its highest active channel."""
    picks = np.unique(np.linspace(0, len(frames) - 1, min(max_frames, len(frames))).round().astype(int))
    channels = frames.shape[-1]
    cmap = plt.get_cmap("tab10" if channels <= 10 else "tab20")
    palette = np.array([mcolors.to_rgb(PADDING)] + [cmap(c % cmap.N)[:3] for c in range(channels)])
    fig, axes = plt.subplots(1, len(picks), figsize=(1.2 * len(picks), 1.4), squeeze=False)
    for ax, t in zip(axes[0], picks):
        grid = np.asarray(frames[t], dtype=np.float32) > 0
        top = np.where(grid.any(axis=-1), channels - np.argmax(grid[..., ::-1], axis=-1), 0)
        ax.imshow(palette[top], interpolation="nearest")
        ax.set_title(f"t+{t}", fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    return figure_png(fig)


def observation_lines(observations: np.ndarray, max_dims: int = 6) -> str:
    """The most varying observation dimensions over a segment, as small line plots."""
    x = np.asarray(observations, dtype=np.float64).reshape(len(observations), -1)
    dims = np.argsort(-x.std(axis=0), kind="stable")[:max_dims]
    fig, ax = plt.subplots(figsize=(3.2, 1.6))
    for d in sorted(dims):
        ax.plot(x[:, d], linewidth=1, label=f"x{d}")
    ax.set_xlabel("step", fontsize=7)
    ax.tick_params(labelsize=6)
    ax.legend(fontsize=5, ncol=3, frameon=False)
    return figure_png(fig)


def _bars(ax, series: dict[str, list[float | None]], colours: list[str], ylabel: str) -> None:
    count = len(colours)
    width = 0.8 / max(len(series), 1)
    hatches = ["", "//", "..", "xx"]
    for i, (name, values) in enumerate(series.items()):
        heights = [np.nan if v is None else v for v in values]
        ax.bar(np.arange(count) + (i - (len(series) - 1) / 2) * width, heights, width, color=colours,
               edgecolor="black", linewidth=0.5, hatch=hatches[i % len(hatches)], label=name)
    ax.set_xticks(range(count))
    ax.set_xticklabels([f"B{k}" for k in range(count)], fontsize=7)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=7)


def attribution_frequency(similarity: list[float], counterfactual: list[float], colours: list[str]) -> str:
    """Fraction of queries attributed to each behaviour, by each method."""
    fig, ax = plt.subplots(figsize=(6, 2.6))
    _bars(ax, {"similarity": similarity, "counterfactual": counterfactual}, colours, "fraction of queries")
    handles = [Patch(facecolor="#dddddd", edgecolor="black", hatch=h, label=name)
               for h, name in (("", "similarity"), ("//", "counterfactual"))]
    ax.legend(handles=handles, fontsize=7, frameon=False)
    ax.set_title("attribution frequency", fontsize=9)
    return figure_png(fig)


def attribution_changes(action_change: list[float | None], value_change: list[float | None],
                        colours: list[str]) -> str:
    """Mean action change and mean value change when each behaviour is left out."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 2.6))
    _bars(left, {"action": action_change}, colours, "mean action change")
    _bars(right, {"value": value_change}, colours, "mean |value change|")
    left.set_title("action change without behaviour", fontsize=9)
    right.set_title("value change without behaviour", fontsize=9)
    return figure_png(fig)

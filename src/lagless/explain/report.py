"""``OUT/report.html``: one self-contained page that shows what discovery and attribution found.

Everything is inline (CSS, base64 PNG images), so the file can be mailed or archived alone.
The report uses whichever OUT files exist: right after discovery it has no attribution
section; without the dataset it shows no example segments, and says why.
"""

from __future__ import annotations

import logging
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from lagless.errors import LaglessError
from lagless.explain import report_figures as figures
from lagless.explain.attribute import check_out_dir, load_labels, load_out_dataset, read_out_json
from lagless.explain.episodes import EpisodeData
from lagless.runs import atomic_write_text

log = logging.getLogger(__name__)
MAX_TIMELINE_EPISODES = 20
EXAMPLES_PER_BEHAVIOUR = 3
MAX_LINE_STEPS = 200
MAX_QUERY_ROWS = 20

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; border-bottom: 1px solid #ddd; padding-bottom: .2em; }
table { border-collapse: collapse; font-size: .85em; margin: .5em 0; }
td, th { border: 1px solid #ddd; padding: .2em .5em; text-align: left; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(330px, 1fr)); gap: 1em; }
.card { border: 1px solid #ccc; border-radius: 6px; padding: .6em; border-top-width: 8px; }
.card h3 { margin: .1em 0 .4em 0; font-size: 1em; }
.note { color: #777; font-size: .85em; }
.warning { background: #fff4e0; border-left: 4px solid #e69500; padding: .4em .8em; margin: .4em 0; }
img { max-width: 100%; }
"""


def _img(b64: str, alt: str) -> str:
    return f'<img src="data:image/png;base64,{b64}" alt="{escape(alt)}">'


def _table(rows: list[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><th>{escape(str(k))}</th><td>{escape(_fmt(v))}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def format_actions(typical: Any) -> str:
    """Typical actions as text: ``[{"action", "frequency"}]`` or ``{"mean": [...], "std": [...]}``."""
    if isinstance(typical, dict):
        return "; ".join(f"{key} {_fmt_numbers(value)}" for key, value in typical.items())
    if not isinstance(typical, list) or not typical:
        return _fmt(typical)
    parts = []
    for item in typical:
        if isinstance(item, dict) and isinstance(item.get("frequency"), float):
            parts.append(f"{item.get('action')} ({item['frequency']:.0%})")
        else:
            parts.append(_fmt_numbers(item))
    return ", ".join(parts)


def _fmt_numbers(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_fmt_numbers(v) for v in value) + "]"
    return _fmt(value)


def _episode_bounds(data: EpisodeData | None, segments: list[dict]) -> np.ndarray:
    """Episode [start, end) from the dataset, or else from the segments that tile the episodes."""
    if data is not None:
        return data.episode_bounds()
    spans: dict[int, list[int]] = {}
    for s in segments:
        span = spans.setdefault(int(s["episode"]), [int(s["start"]), int(s["end"])])
        span[0], span[1] = min(span[0], int(s["start"])), max(span[1], int(s["end"]))
    return np.array([spans[e] for e in sorted(spans)], dtype=np.int64).reshape(-1, 2)


def _load_data(out: Path, data: str | Path | EpisodeData | None, labels: np.ndarray | None):
    """(dataset or None, a note saying why it is missing)."""
    try:
        dataset = load_out_dataset(out, data)
    except (LaglessError, ImportError) as e:
        return None, f"example segments are not shown: the dataset could not be loaded ({e})"
    if labels is not None and len(labels) != dataset.num_steps:
        return None, (f"example segments are not shown: the dataset has {dataset.num_steps} steps, "
                      f"labels.npy {len(labels)}")
    return dataset, None


def _header(out: Path, discover: dict, num_steps: int | None, num_episodes: int, num_behaviours: int) -> str:
    rows = [("dataset", discover.get("data")), ("steps", num_steps), ("episodes", num_episodes or None),
            ("behaviours", num_behaviours)]
    rows += [(key, discover.get(key)) for key in ("codebook_size", "codebook_usage", "perplexity",
                                                  "reconstruction_mse", "lagless_version") if key in discover]
    config = discover.get("config") or {}
    settings = _table(sorted(config.items())) if config else '<p class="note">no discover settings found</p>'
    return (f"<h1>lagless explain: {escape(out.name)}</h1>{_table(rows)}"
            f"<details><summary>discover settings</summary>{settings}</details>")


def _confidence(confidence: dict, places: dict | None = None) -> str:
    """Warnings first, then what the behaviours started from, the eigengap bars and the
    segmentation numbers."""
    warnings = "".join(f'<p class="warning">{escape(w)}</p>' for w in confidence.get("warnings", []))
    choice, check = confidence.get("eigengap") or {}, confidence.get("segments") or {}
    parts = ["<h2>How sure is this?</h2>", warnings or '<p class="note">no warnings: the eigengap is '
             'clear and segments are not much shorter than typical</p>']
    if places:
        parts.append(f'<p class="note">{escape(_places_sentence(places))}</p>')
    if choice.get("gaps"):
        parts.append(_img(figures.eigengaps(choice["gaps"], choice.get("best"), choice.get("runner_up")),
                          "eigengaps"))
    rows = [("eigengap choice", choice.get("best")), ("runner-up", choice.get("runner_up")),
            ("best gap / runner-up gap", choice.get("gap_ratio")),
            ("median segment length", check.get("median_length")),
            ("share of short segments", check.get("short_share")),
            ("share of A B A segments", check.get("alternation_share"))]
    return "".join(parts) + _table(rows)


def _places_sentence(places: dict) -> str:
    """Which graph the behaviours started from, so that the eigengaps shown are read right."""
    if places.get("found"):
        return (f"Behaviours start from {places.get('places')} places: regions of the state space that "
                f"the trajectories keep to (eigengap {places.get('eigengap')} of the state-cluster graph, "
                f"at least {places.get('min_eigengap')}); the eigengaps below are that graph's.")
    return (f"No places: the state-cluster graph's largest eigengap is {places.get('eigengap')} (below "
            f"{places.get('min_eigengap')}), so behaviours start from the code graph, whose eigengaps "
            "are below.")


def _example(data: EpisodeData, segment: dict) -> str:
    start, end = int(segment["start"]), int(segment["end"])
    caption = f"episode {segment['episode']}, steps {start}-{end} ({end - start} steps)"
    obs = data.observations[start:end]
    if obs.ndim == 4:
        image = figures.grid_frames(obs)
    else:
        image = figures.observation_lines(obs[:MAX_LINE_STEPS])
    return f"<figure>{_img(image, caption)}<figcaption class=\"note\">{escape(caption)}</figcaption></figure>"


def _cards(behaviours: list[dict], segments: list[dict], colours: list[str], data: EpisodeData | None,
           note: str | None) -> str:
    cards = []
    for k, colour in enumerate(colours):
        info = behaviours[k] if k < len(behaviours) else {"id": k}
        rows = [("colour", colour), ("steps", info.get("steps")), ("segments", info.get("segments")),
                ("mean length", info.get("mean_length")), ("mean return", info.get("mean_return")),
                ("typical actions", format_actions(info.get("typical_actions")))]
        examples = ""
        if data is not None:
            own = sorted((s for s in segments if int(s["behaviour"]) == k),
                         key=lambda s: (-(int(s["end"]) - int(s["start"])), int(s["start"])))
            examples = "".join(_example(data, s) for s in own[:EXAMPLES_PER_BEHAVIOUR])
        cards.append(f'<div class="card" style="border-top-color: {colour}"><h3>Behaviour {k}</h3>'
                     f"{_table(rows)}{examples}</div>")
    extra = f'<p class="note">{escape(note)}</p>' if note else ""
    return f'<h2>Behaviours</h2>{extra}<div class="cards">{"".join(cards)}</div>'


def _attribution(attribution: dict, colours: list[str]) -> str:
    summary = attribution.get("behaviours", [])
    count = len(colours)
    pick = {b["id"]: b for b in summary}

    def column(key: str) -> list:
        return [pick.get(k, {}).get(key) for k in range(count)]

    settings = attribution.get("settings", {})
    charts = (_img(figures.attribution_frequency(column("similarity_frequency"),
                                                 column("counterfactual_frequency"), colours),
                   "attribution frequency")
              + _img(figures.attribution_changes(column("mean_action_change"), column("mean_value_change"),
                                                 colours), "action and value change"))
    head = ("<tr><th>behaviour</th><th>similarity freq.</th><th>counterfactual freq.</th><th>action contrast"
            "</th><th>mean action change</th><th>mean value change</th><th>embedding distance</th></tr>")
    body = "".join(
        f"<tr><td>Behaviour {k}</td>" + "".join(
            f"<td>{escape(_fmt(pick.get(k, {}).get(key)))}</td>"
            for key in ("similarity_frequency", "counterfactual_frequency", "action_contrast",
                        "mean_action_change", "mean_value_change", "embedding_distance")) + "</tr>"
        for k in range(count))
    queries = attribution.get("queries", [])[:MAX_QUERY_ROWS]
    qhead = ("<tr><th>step</th><th>episode</th><th>behaviour here</th><th>agent action</th>"
             "<th>by similarity</th><th>by counterfactual</th></tr>")
    qbody = "".join(
        f"<tr><td>{q['step']}</td><td>{q['episode']}</td><td>{q['label']}</td>"
        f"<td>{escape(_fmt(q['agent_action']))}</td><td>Behaviour {q['similarity']['behaviour']}</td>"
        f"<td>Behaviour {q['counterfactual']['behaviour']}</td></tr>" for q in queries)
    note = attribution.get("embedding_note")
    return (f"<h2>Attribution</h2><p>{attribution.get('num_queries')} query states; agent: "
            f"{escape(_fmt(settings.get('agent')))}; similarity: {escape(_fmt(settings.get('similarity')))}; "
            f"action change: {escape(_fmt(settings.get('action_change')))}.</p>"
            + (f'<p class="note">{escape(note)}</p>' if note else "")
            + charts + f"<table>{head}{body}</table>"
            + f"<details><summary>first {len(queries)} queries</summary><table>{qhead}{qbody}</table></details>"
            + f"<details><summary>attribution settings</summary>{_table(sorted(settings.items()))}</details>")


def _section(name: str, build) -> str:
    """A section built from one OUT file; a file of the wrong shape becomes a note, not a crash."""
    try:
        return build()
    except (KeyError, TypeError, ValueError, IndexError) as e:
        log.warning("%s is not in the expected form (%r): its section is left out", name, e)
        return f'<p class="note">{escape(name)} is not in the expected form ({escape(repr(e))}); rerun the step that writes it</p>'


def write_report(out_dir: str | Path, data: str | Path | EpisodeData | None = None) -> Path:
    """Write ``OUT/report.html`` from the files in OUT; ``data`` (an EpisodeData, path or id) saves
    reloading, or replaces, the dataset OUT/discover.json names."""
    out = check_out_dir(out_dir)
    discover = read_out_json(out, "discover.json", {}) or {}
    behaviours = read_out_json(out, "behaviours.json", []) or []
    segments = read_out_json(out, "segments.json", []) or []
    graph = read_out_json(out, "code_graph.json")
    attribution = read_out_json(out, "attribution.json")
    labels = load_labels(out) if (out / "labels.npy").exists() else None
    count = max(len(behaviours), int(labels.max()) + 1 if labels is not None and len(labels) else 0)
    colours = figures.behaviour_colours(count)
    dataset, note = _load_data(out, data, labels) if labels is not None else (None, "no labels.npy yet")
    if note:
        log.info(note)
    num_steps = len(labels) if labels is not None else discover.get("num_steps")
    bounds = _episode_bounds(dataset, segments)
    parts = [_header(out, discover, num_steps, len(bounds), count)]
    if labels is not None and len(bounds) and count:
        parts.append("<h2>Behaviours along episodes</h2>"
                     f'<p class="note">the first {min(len(bounds), MAX_TIMELINE_EPISODES)} episodes</p>'
                     + _img(figures.timeline(labels, bounds, colours, MAX_TIMELINE_EPISODES), "timeline"))
    if graph and graph.get("codes"):
        parts.append("<h2>Code graph</h2>" + _section("code_graph.json", lambda: _img(figures.code_graph(
            graph["codes"], np.asarray(graph["weights"], dtype=np.float64),
            graph.get("behaviour_of_code", [-1] * len(graph["codes"])), colours), "code graph")))
    if discover.get("confidence"):
        parts.append(_section("discover.json",
                              lambda: _confidence(discover["confidence"], discover.get("places"))))
    if count:
        parts.append(_cards(behaviours, segments, colours, dataset, note))
    if attribution:
        parts.append(_section("attribution.json", lambda: _attribution(attribution, colours)))
    html = ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>lagless explain: {escape(out.name)}</title><style>{CSS}</style></head>"
            f"<body>{''.join(parts)}</body></html>\n")
    return atomic_write_text(out / "report.html", html)

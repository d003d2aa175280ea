"""How sure discovery is of its answer: the eigengap's margin and signs of over-segmentation.

A user with real trajectories has no true labels to score against, so discover.json and the
report say where the answer is shaky: when the largest eigengap barely beats the runner-up,
another number of behaviours was nearly as good; when many segments are much shorter than
the typical one, or two labels keep alternating (A B A), a behaviour is probably cut into
its phases or split across labels.
"""

from __future__ import annotations

import numpy as np

from lagless.explain.segments import Segments

CLEAR_GAP_RATIO = 1.5  # the chosen gap should beat the runner-up by this factor
SHORT_FRACTION = 0.25  # a segment is short below this fraction of the median segment length
MAX_SHORT_SHARE = 0.3  # warn when more segments than this are short
MAX_ALTERNATION_SHARE = 0.3  # warn when more segments than this sit in an A B A pattern


def eigengap_choice(eigenvalues: np.ndarray, max_behaviours: int) -> dict:
    """The gap eigenvalues[K] - eigenvalues[K-1] for every K in [2, max_behaviours], the best K,
    the runner-up K and how many times larger the best gap is than the runner-up's."""
    values = np.asarray(eigenvalues, dtype=np.float64)
    top = min(max_behaviours, len(values) - 1)
    if top < 2:
        return {"gaps": {}, "best": None, "runner_up": None, "gap_ratio": None, "clear": False}
    gaps = values[2: top + 1] - values[1: top]
    order = np.argsort(-gaps, kind="stable")
    best, second = int(order[0]) + 2, (int(order[1]) + 2 if len(order) > 1 else None)
    ratio = (float(gaps[order[0]] / max(gaps[order[1]], 1e-12)) if second is not None else None)
    return {"gaps": {str(k): round(float(g), 6) for k, g in zip(range(2, top + 1), gaps)},
            "best": best, "runner_up": second,
            "gap_ratio": None if ratio is None else round(ratio, 3),
            "clear": ratio is None or ratio >= CLEAR_GAP_RATIO}


def segmentation_check(segments: Segments) -> dict:
    """Median segment length, the share of segments under a quarter of it, and the share of
    segments that interrupt one behaviour only for it to come back (A B A in one episode)."""
    lengths = np.asarray(segments.end - segments.start)
    if len(lengths) == 0:
        return {"median_length": 0.0, "short_share": 0.0, "alternation_share": 0.0}
    median = float(np.median(lengths))
    short = float((lengths < SHORT_FRACTION * median).mean())
    same_episode = segments.episode[2:] == segments.episode[:-2]
    back = same_episode & (segments.behaviour[2:] == segments.behaviour[:-2])
    alternation = float(back.sum() / len(lengths)) if len(lengths) > 2 else 0.0
    return {"median_length": median, "short_share": round(short, 4),
            "alternation_share": round(alternation, 4)}


def discovery_confidence(eigenvalues: np.ndarray, max_behaviours: int, forced: bool,
                         num_behaviours: int, segments: Segments) -> dict:
    """discover.json's ``confidence``: the eigengap choice, the segmentation check and the
    warnings (plain sentences) a user should read before trusting the behaviours."""
    choice = eigengap_choice(eigenvalues, max_behaviours)
    check = segmentation_check(segments)
    warnings = []
    if not forced and not choice["clear"]:
        warnings.append(
            f"the number of behaviours is uncertain: the eigengap at K={choice['best']} is only "
            f"{choice['gap_ratio']}x the runner-up at K={choice['runner_up']}; try --behaviours "
            f"{choice['runner_up']} and compare")
    if not forced and choice["best"] is not None and num_behaviours != choice["best"]:
        warnings.append(f"the eigengap chose {choice['best']} behaviours; {choice['best'] - num_behaviours}"
                        " small ones were merged into their neighbours (--min-behaviour-fraction)")
    if check["short_share"] > MAX_SHORT_SHARE:
        warnings.append(
            f"possible over-segmentation: {check['short_share']:.0%} of segments are shorter than "
            f"a quarter of the median ({check['median_length']:.0f} steps); a longer "
            "--min-segment-length or fewer --behaviours may merge them")
    if check["alternation_share"] > MAX_ALTERNATION_SHARE:
        warnings.append(
            f"possible split behaviour: {check['alternation_share']:.0%} of segments interrupt one "
            "behaviour that then comes straight back (A B A): two labels may be phases of one "
            "behaviour")
    return {"eigengap": choice, "segments": check, "warnings": warnings}

"""The HTML report: valid, self-contained, names every behaviour, with or without attribution."""

import base64
import json
import re
from html.parser import HTMLParser

import numpy as np
import pytest

from lagless.cli import main
from lagless.explain.attribute import attribute
from lagless.explain.datasets import save_npz
from lagless.explain.episodes import EpisodeData
from lagless.explain.report import format_actions, write_report

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class TagChecker(HTMLParser):
    """Checks that every opened element is closed in order, and collects the images."""

    def __init__(self):
        super().__init__()
        self.stack, self.errors, self.images, self.doctype = [], [], [], None

    def handle_decl(self, decl):
        self.doctype = decl

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(tag)


def check_html(text: str) -> TagChecker:
    checker = TagChecker()
    checker.feed(text)
    checker.close()
    assert checker.doctype == "DOCTYPE html" and text.startswith("<!DOCTYPE html>")
    assert not checker.errors and not checker.stack
    for bad in ('src="http', "href=", "<script", "<link", "url("):
        assert bad not in text
    assert checker.images
    for src in checker.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(b"\x89PNG")
    return checker


def make_out(root, grid: bool, num_behaviours: int = 3, episodes: int = 6, length: int = 30, seed: int = 0):
    """A dataset, its npz and a discover OUT folder with known labels and a code graph."""
    rng = np.random.default_rng(seed)
    n = episodes * length
    labels = np.repeat(rng.integers(0, num_behaviours, size=n // 10), 10)
    labels[:num_behaviours] = np.arange(num_behaviours)  # every behaviour present
    obs = rng.random((n, 10, 10, 4)) > 0.8 if grid else rng.normal(size=(n, 5)).astype(np.float32)
    done = np.zeros(n, bool)
    done[length - 1::length] = True
    data = EpisodeData(obs, rng.integers(0, 3, size=n), rng.random(n).astype(np.float32), done, np.zeros(n, bool))
    path = save_npz(data, root / "data.npz")
    out = root / "out"
    out.mkdir()
    np.save(out / "labels.npy", labels.astype(np.int64))
    ids = data.episode_ids()
    cut = np.flatnonzero((labels[1:] != labels[:-1]) | (ids[1:] != ids[:-1])) + 1
    segments = [{"episode": int(ids[s]), "start": int(s), "end": int(e), "behaviour": int(labels[s])}
                for s, e in zip(np.r_[0, cut], np.r_[cut, n])]
    (out / "segments.json").write_text(json.dumps(segments))
    (out / "behaviours.json").write_text(json.dumps([
        {"id": k, "steps": int((labels == k).sum()), "segments": sum(s["behaviour"] == k for s in segments),
         "mean_length": 10.0, "mean_return": 1.5, "typical_actions": [{"action": 1, "frequency": 0.5}]}
        for k in range(num_behaviours)]))
    codes = list(range(2 * num_behaviours))
    weights = rng.random((len(codes), len(codes)))
    weights = (weights + weights.T) / 2
    np.fill_diagonal(weights, 0)
    (out / "code_graph.json").write_text(json.dumps({
        "codes": codes, "weights": weights.tolist(), "behaviour_of_code": [c % num_behaviours for c in codes],
        "eigenvalues": [0.0] * len(codes), "similarity_weight": 0.5}))
    (out / "discover.json").write_text(json.dumps({
        "data": str(path), "num_steps": n, "num_behaviours": num_behaviours, "codebook_size": 16,
        "codebook_usage": 0.375, "perplexity": 5.2, "reconstruction_mse": 0.01, "config": {"seed": 0}}))
    return out, data


@pytest.mark.parametrize("grid", [True, False])
def test_report_right_after_discovery(tmp_path, grid):
    out, _data = make_out(tmp_path, grid)
    path = write_report(out)
    text = path.read_text()
    checker = check_html(text)
    for k in range(3):
        assert f"Behaviour {k}" in text
    assert "Attribution" not in text and "Code graph" in text and str(tmp_path / "data.npz") in text
    # timeline + code graph + up to 3 examples per behaviour
    assert len(checker.images) == 2 + sum(min(3, b) for b in _segments_per_behaviour(out))


def _segments_per_behaviour(out):
    return [b["segments"] for b in json.loads((out / "behaviours.json").read_text())]


def test_report_with_attribution_and_cli(tmp_path, capsys):
    out, _data = make_out(tmp_path, grid=False, num_behaviours=4)
    attribute(out, bc=True, queries=20, updates=5, progress=False)
    text = (out / "report.html").read_text()
    check_html(text)
    assert "<h2>Attribution</h2>" in text and "20 query states" in text
    assert all(f"Behaviour {k}" in text for k in range(4))
    assert main(["explain", "report", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out / "report.html")


def test_report_without_dataset_or_optional_files(tmp_path):
    out, _ = make_out(tmp_path, grid=True)
    (tmp_path / "data.npz").unlink()
    (out / "code_graph.json").unlink()
    (out / "attribution.json").write_text(json.dumps({"behaviours": "damaged", "queries": [{}]}))
    text = write_report(out).read_text()
    assert "attribution.json is not in the expected form" in text
    checker = check_html(text)
    assert len(checker.images) == 1  # the timeline, from the segments alone
    assert "example segments are not shown" in text and "Behaviour 2" in text
    assert re.search(r"<th>steps</th><td>180</td>", text)


def test_format_actions():
    assert format_actions([{"action": 2, "frequency": 0.75}, {"action": 0, "frequency": 0.25}]) == "2 (75%), 0 (25%)"
    assert format_actions({"mean": [0.5, -1.0], "std": [0.1, 0.2]}) == "mean [0.5, -1]; std [0.1, 0.2]"
    assert format_actions(None) == "n/a"

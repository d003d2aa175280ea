"""Tests for lagless.runs: checkpoints, trainer state round trips, metrics and plots."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from lagless.errors import LaglessError
from lagless.runs import (
    MetricsLogger,
    atomic_write_json,
    atomic_write_text,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    load_module_tensors,
    load_optimizer_tensors,
    module_tensors,
    moving_average,
    optimizer_tensors,
    plot_comparison,
    plot_returns,
    read_metrics,
    restore_rng,
    rng_tensors,
    save_checkpoint,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _tensors(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "a": torch.randn(3, 4, generator=g),
        "b": torch.arange(5, dtype=torch.int64),
        "scalar": torch.tensor(2.5),
    }


# --------------------------------------------------------------------------- atomic


def test_atomic_writes_leave_no_temp_files(tmp_path):
    atomic_write_text(tmp_path / "x.txt", "hello")
    atomic_write_json(tmp_path / "sub" / "y.json", {"k": [1, 2]})
    atomic_write_text(tmp_path / "x.txt", "again")
    assert (tmp_path / "x.txt").read_text() == "again"
    assert json.loads((tmp_path / "sub" / "y.json").read_text()) == {"k": [1, 2]}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub", "x.txt"]


# --------------------------------------------------------------------------- checkpoints


def test_save_load_round_trip(tmp_path):
    tensors = _tensors()
    path = save_checkpoint(tmp_path, 42, tensors, {"env": "CartPole-v1", "seed": 1})
    assert path == tmp_path / "checkpoints" / "step_000000000042"
    assert sorted(p.name for p in path.iterdir()) == ["meta.json", "weights.safetensors"]
    loaded, meta = load_checkpoint(path)
    assert loaded.keys() == tensors.keys()
    for k, v in tensors.items():
        assert torch.equal(loaded[k], v) and loaded[k].dtype == v.dtype
    assert meta["env"] == "CartPole-v1" and meta["seed"] == 1 and meta["step"] == 42
    assert "lagless_version" in meta and "saved_at" in meta
    rec = meta["files"]["weights.safetensors"]
    assert rec["bytes"] == (path / "weights.safetensors").stat().st_size
    assert len(rec["sha256"]) == 64


def test_save_handles_shared_and_noncontiguous_tensors(tmp_path):
    base = torch.randn(4, 6)
    tensors = {"w": base, "tied": base, "t": base.t(), "row": base[1]}
    path = save_checkpoint(tmp_path, 1, tensors, {})
    loaded, _ = load_checkpoint(path)
    for k, v in tensors.items():
        assert torch.equal(loaded[k], v)


def test_pruning_keeps_newest_and_latest_order(tmp_path):
    assert list_checkpoints(tmp_path) == [] and latest_checkpoint(tmp_path) is None
    for step in (100, 5, 2000, 30, 1000):
        save_checkpoint(tmp_path, step, _tensors(step), {"s": step}, keep=3)
    steps = [int(p.name.split("_")[1]) for p in list_checkpoints(tmp_path)]
    # Saved last (step 1000) is always kept; beyond it the highest steps survive.
    assert steps == [100, 1000, 2000]
    assert latest_checkpoint(tmp_path).name == "step_000000002000"
    save_checkpoint(tmp_path, 3000, _tensors(), {}, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == [
        "step_000000002000",
        "step_000000003000",
    ]
    names = {p.name for p in (tmp_path / "checkpoints").iterdir()}
    assert not any(n.startswith(".tmp-") for n in names)


def test_overwrite_existing_step(tmp_path):
    save_checkpoint(tmp_path, 7, {"x": torch.zeros(2)}, {"v": 1})
    path = save_checkpoint(tmp_path, 7, {"x": torch.ones(3)}, {"v": 2})
    loaded, meta = load_checkpoint(path)
    assert torch.equal(loaded["x"], torch.ones(3)) and meta["v"] == 2
    assert len(list_checkpoints(tmp_path)) == 1


def test_leftover_tmp_folder_is_ignored_and_cleaned(tmp_path):
    good = save_checkpoint(tmp_path, 10, _tensors(), {})
    half = tmp_path / "checkpoints" / ".tmp-step_000000000020-dead"
    half.mkdir()
    (half / "weights.safetensors").write_bytes(b"\x00\x01partial")
    assert list_checkpoints(tmp_path) == [good]
    assert latest_checkpoint(tmp_path) == good
    save_checkpoint(tmp_path, 30, _tensors(), {})
    assert not half.exists()


def test_interrupted_replace_is_recovered(tmp_path):
    # Simulate a kill between moving step 10 aside and moving its replacement in.
    path = save_checkpoint(tmp_path, 10, _tensors(1), {})
    aside = tmp_path / "checkpoints" / ".tmp-replaced-step_000000000010-abcd"
    path.rename(aside)
    assert list_checkpoints(tmp_path) == []
    save_checkpoint(tmp_path, 20, _tensors(2), {})
    assert [p.name for p in list_checkpoints(tmp_path)] == [
        "step_000000000010",
        "step_000000000020",
    ]
    loaded, _ = load_checkpoint(path)
    assert torch.equal(loaded["a"], _tensors(1)["a"])


_SAVE_LOOP = """
import sys, torch
from lagless.runs import save_checkpoint
step = 0
while True:
    step += 1
    save_checkpoint(sys.argv[1], step, {"w": torch.full((256, 256), float(step))}, {}, keep=2)
    if step == 3:
        print("ready", flush=True)
"""


def test_sigkill_mid_save_leaves_only_complete_checkpoints(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-c", _SAVE_LOOP, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.2)
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    ckpts = list_checkpoints(tmp_path)
    assert ckpts
    for path in ckpts:
        tensors, meta = load_checkpoint(path)
        assert torch.all(tensors["w"] == float(meta["step"]))


def test_truncated_weights_is_corrupt(tmp_path):
    path = save_checkpoint(tmp_path, 1, _tensors(), {})
    w = path / "weights.safetensors"
    w.write_bytes(w.read_bytes()[:-10])
    with pytest.raises(LaglessError, match="corrupt") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


def test_flipped_byte_fails_sha256(tmp_path):
    path = save_checkpoint(tmp_path, 1, _tensors(), {})
    w = path / "weights.safetensors"
    data = bytearray(w.read_bytes())
    data[-1] ^= 0xFF
    w.write_bytes(bytes(data))
    with pytest.raises(LaglessError, match="sha256"):
        load_checkpoint(path)


def test_unreadable_safetensors_is_corrupt(tmp_path):
    path = save_checkpoint(tmp_path, 1, _tensors(), {})
    garbage = b"not a safetensors file at all"
    (path / "weights.safetensors").write_bytes(garbage)
    meta = json.loads((path / "meta.json").read_text())
    import hashlib

    meta["files"]["weights.safetensors"] = {
        "sha256": hashlib.sha256(garbage).hexdigest(),
        "bytes": len(garbage),
    }
    (path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(LaglessError, match="safetensors"):
        load_checkpoint(path)


def test_garbage_meta_json(tmp_path):
    path = save_checkpoint(tmp_path, 1, _tensors(), {})
    (path / "meta.json").write_text("{not json")
    with pytest.raises(LaglessError, match="meta.json"):
        load_checkpoint(path)
    (path / "meta.json").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(LaglessError, match="corrupt"):
        load_checkpoint(path)


def test_missing_folder_and_files(tmp_path):
    with pytest.raises(LaglessError, match="does not exist"):
        load_checkpoint(tmp_path / "checkpoints" / "step_000000000001")
    path = save_checkpoint(tmp_path, 1, _tensors(), {})
    (path / "weights.safetensors").unlink()
    with pytest.raises(LaglessError, match="weights.safetensors is missing"):
        load_checkpoint(path)


def test_save_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError):
        save_checkpoint(tmp_path, -1, _tensors(), {})
    with pytest.raises(ValueError):
        save_checkpoint(tmp_path, 1, _tensors(), {}, keep=0)
    with pytest.raises(TypeError):
        save_checkpoint(tmp_path, 1, {"x": [1, 2]}, {})
    with pytest.raises(TypeError):
        save_checkpoint(tmp_path, 1, _tensors(), {"bad": object()})
    assert list_checkpoints(tmp_path) == []


# --------------------------------------------------------------------------- trainer state


def _model() -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.LayerNorm(8), torch.nn.Linear(8, 2)
    )


def _train_steps(model, opt, n: int) -> None:
    for _ in range(n):
        x = torch.randn(16, 4)  # draws from the global torch RNG: tests RNG restore too
        noise = float(np.random.rand()) + random.random()
        loss = (model(x) - noise).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_module_load_is_strict():
    model = _model()
    tensors = module_tensors("policy", model)
    assert "policy.0.weight" in tensors
    other = _model()
    load_module_tensors("policy", other, tensors)
    for a, b in zip(model.parameters(), other.parameters()):
        assert torch.equal(a, b)
    missing = {k: v for k, v in tensors.items() if k != "policy.0.bias"}
    with pytest.raises(LaglessError, match="policy.0.bias"):
        load_module_tensors("policy", _model(), missing)
    extra = dict(tensors, **{"policy.9.weight": torch.zeros(1)})
    with pytest.raises(LaglessError, match="policy.9.weight"):
        load_module_tensors("policy", _model(), extra)
    wrong = dict(tensors, **{"policy.3.weight": torch.zeros(3, 8)})
    with pytest.raises(LaglessError, match="policy.3.weight"):
        load_module_tensors("policy", _model(), wrong)


def test_optimizer_and_rng_resume_is_bit_identical(tmp_path):
    torch.manual_seed(0)
    random.seed(0)
    np.random.seed(0)
    gen = np.random.default_rng(123)
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3, betas=(0.8, 0.95))
    _train_steps(model, opt, 3)
    gen.random(5)

    tensors = module_tensors("policy", model)
    opt_t, opt_meta = optimizer_tensors("optim", opt)
    rng_t, rng_meta = rng_tensors(gen)
    assert any(k.endswith(".step") and v.dim() == 0 for k, v in opt_t.items())
    assert opt_meta["param_groups"][0]["values"]["lr"] == 3e-3
    path = save_checkpoint(
        tmp_path, 3, {**tensors, **opt_t, **rng_t}, {"optim": opt_meta, "rng": rng_meta}
    )

    # Uninterrupted run continues.
    _train_steps(model, opt, 2)
    expected_gen = gen.random(3)
    expected_next = torch.rand(2)

    # Scramble global RNGs, then resume into fresh objects.
    torch.manual_seed(999)
    random.seed(999)
    np.random.seed(999)
    loaded, meta = load_checkpoint(path)
    model2 = _model()
    opt2 = torch.optim.Adam(model2.parameters(), lr=1.0)
    gen2 = np.random.default_rng(0)
    load_module_tensors("policy", model2, loaded)
    load_optimizer_tensors("optim", opt2, loaded, meta["optim"])
    restore_rng(loaded, meta["rng"], gen2)
    assert opt2.param_groups[0]["lr"] == 3e-3
    assert opt2.param_groups[0]["betas"] == (0.8, 0.95)
    _train_steps(model2, opt2, 2)

    for a, b in zip(model.parameters(), model2.parameters()):
        assert torch.equal(a, b)
    for p1, p2 in zip(model.parameters(), model2.parameters()):
        s1, s2 = opt.state[p1], opt2.state[p2]
        assert s1.keys() == s2.keys()
        for k in s1:
            assert torch.equal(s1[k], s2[k])
    np.testing.assert_array_equal(gen2.random(3), expected_gen)
    assert torch.equal(torch.rand(2), expected_next)


def test_optimizer_mismatch_raises():
    model = _model()
    opt = torch.optim.Adam(model.parameters())
    _train_steps(model, opt, 1)
    tensors, meta = optimizer_tensors("optim", opt)
    small = torch.nn.Linear(4, 2)
    with pytest.raises(LaglessError):
        load_optimizer_tensors("optim", torch.optim.Adam(small.parameters()), tensors, meta)
    with pytest.raises(LaglessError, match="SGD"):
        load_optimizer_tensors("optim", torch.optim.SGD(model.parameters(), lr=0.1), tensors, meta)
    missing = {k: v for k, v in tensors.items() if not k.endswith("exp_avg_sq")}
    with pytest.raises(LaglessError, match="exp_avg_sq"):
        load_optimizer_tensors("optim", torch.optim.Adam(_model().parameters()), missing, meta)


def test_restore_rng_rejects_missing_state():
    tensors, meta = rng_tensors()
    with pytest.raises(LaglessError):
        restore_rng({}, meta)
    with pytest.raises(LaglessError):
        restore_rng(tensors, {})
    with pytest.raises(LaglessError):
        restore_rng(tensors, meta, np.random.default_rng(0))  # no generator state was saved


# --------------------------------------------------------------------------- metrics


def test_metrics_header_growth_and_read(tmp_path):
    with MetricsLogger(tmp_path, tensorboard=False) as m:
        m.log(1, {"losses/policy_loss": 0.5})
        m.log(2, {"losses/policy_loss": 0.25, "charts/episodic_return": 10.0})
        m.log(3, {"charts/episodic_return": float("nan")})
        assert m.columns == ["step", "losses/policy_loss", "charts/episodic_return"]
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert lines == [
        "step,losses/policy_loss,charts/episodic_return",
        "1,0.5,",
        "2,0.25,10.0",
        "3,,",
    ]
    cols = read_metrics(tmp_path / "metrics.csv")
    np.testing.assert_array_equal(cols["step"], [1, 2, 3])
    np.testing.assert_array_equal(cols["losses/policy_loss"], [0.5, 0.25, np.nan])
    assert math.isnan(cols["charts/episodic_return"][0]) and cols["charts/episodic_return"][1] == 10


def test_metrics_resume_drops_later_rows(tmp_path):
    with MetricsLogger(tmp_path, tensorboard=False) as m:
        for step in range(1, 6):
            m.log(step * 10, {"a": step})
    # A kill mid-row leaves a partial last line behind.
    with open(tmp_path / "metrics.csv", "a") as f:
        f.write("60,6.")
    with MetricsLogger(tmp_path, resume_step=30, tensorboard=False) as m:
        m.log(40, {"a": 99.0, "b": 1.5})
    cols = read_metrics(tmp_path / "metrics.csv")
    np.testing.assert_array_equal(cols["step"], [10, 20, 30, 40])
    np.testing.assert_array_equal(cols["a"], [1, 2, 3, 99])
    np.testing.assert_array_equal(cols["b"], [np.nan, np.nan, np.nan, 1.5])


def test_metrics_tensorboard_and_fresh_replace(tmp_path):
    with MetricsLogger(tmp_path) as m:
        m.log(1, {"a": 1.0})
    assert any((tmp_path / "tb").iterdir())
    with MetricsLogger(tmp_path, tensorboard=False) as m:  # not resuming: starts over
        m.log(5, {"z": 2.0})
    assert read_metrics(tmp_path / "metrics.csv").keys() == {"step", "z"}
    m.close()  # idempotent
    with pytest.raises(RuntimeError):
        m.log(6, {"z": 1.0})


def test_metrics_tensorboard_purge_step(tmp_path, monkeypatch):
    import torch.utils.tensorboard as tb_module

    calls = []

    class FakeWriter:
        def __init__(self, **kwargs):
            calls.append(kwargs)

        def add_scalar(self, *args):
            pass

        def close(self):
            pass

    monkeypatch.setattr(tb_module, "SummaryWriter", FakeWriter)
    MetricsLogger(tmp_path).close()
    MetricsLogger(tmp_path, resume_step=500).close()
    assert calls[0]["purge_step"] is None
    assert calls[1]["purge_step"] == 501
    assert calls[1]["log_dir"] == str(tmp_path / "tb")


def test_read_metrics_missing_empty_and_corrupt(tmp_path):
    with pytest.raises(LaglessError, match="does not exist"):
        read_metrics(tmp_path / "metrics.csv")
    (tmp_path / "metrics.csv").write_text("")
    with pytest.raises(LaglessError, match="empty"):
        read_metrics(tmp_path / "metrics.csv")
    (tmp_path / "metrics.csv").write_text("step,a\n1,abc\n")
    with pytest.raises(LaglessError, match="corrupt"):
        read_metrics(tmp_path / "metrics.csv")


# --------------------------------------------------------------------------- plots


def _fake_run(run_dir, offset: float) -> None:
    rng = np.random.default_rng(0)
    with MetricsLogger(run_dir, tensorboard=False) as m:
        for i in range(60):
            values = {"losses/value_loss": 1.0 / (i + 1)}
            if i % 2 == 0:
                values["charts/episodic_return"] = offset + i + rng.normal()
            m.log(i * 100, values)


def test_plots_write_pngs(tmp_path):
    _fake_run(tmp_path / "r1", 0.0)
    _fake_run(tmp_path / "r2", 20.0)
    out = plot_returns(tmp_path / "r1" / "metrics.csv", tmp_path / "plots" / "r1.png", "CartPole")
    assert out.read_bytes().startswith(PNG_SIGNATURE)
    cmp_png = tmp_path / "cmp.png"
    plot_comparison(
        {"run 1": tmp_path / "r1" / "metrics.csv", "run 2": tmp_path / "r2" / "metrics.csv"},
        cmp_png,
        title="comparison",
    )
    assert cmp_png.read_bytes().startswith(PNG_SIGNATURE)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cmp.png", "plots", "r1", "r2"]
    with pytest.raises(LaglessError, match="no column"):
        plot_returns(tmp_path / "r1" / "metrics.csv", tmp_path / "x.png", key="nope")
    with pytest.raises(LaglessError):
        plot_comparison({}, tmp_path / "x.png")


def test_moving_average():
    np.testing.assert_allclose(moving_average(np.array([1.0, 3.0, 5.0, 7.0]), 2), [1, 2, 4, 6])
    assert moving_average(np.array([])).size == 0

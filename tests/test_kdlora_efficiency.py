"""Efficiency figures: latency, peak training memory in a fresh process, size on disk, the report."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from transformers import AutoModelForSequenceClassification, BertConfig

from lagless.errors import LaglessError
from lagless.kdlora.efficiency import (
    METHODS,
    EfficiencyReport,
    inference_latency,
    model_size_on_disk_mb,
    peak_train_memory,
    peak_train_memory_mb,
)
from lagless.kdlora.lora import LoraSettings, apply_lora, count_parameters


def tiny_bert(num_labels: int = 2):
    torch.manual_seed(0)
    config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=37, num_labels=num_labels)
    return AutoModelForSequenceClassification.from_config(config)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    tiny_bert().save_pretrained(folder)
    return folder


def test_latency_is_positive_and_finite():
    model = tiny_bert().train()
    result = inference_latency(model, None, batch_size=4, seq_len=8, repeats=3, warmup=1)
    assert result["latency_ms_b32"] > 0 and math.isfinite(result["latency_ms_b32"])
    assert result["throughput_per_s"] > 0 and math.isfinite(result["throughput_per_s"])
    assert (result["batch_size"], result["seq_len"]) == (4, 8)
    assert model.training  # mode restored
    with pytest.raises(LaglessError, match="merge"):
        inference_latency(apply_lora(tiny_bert(), LoraSettings()), None, seq_len=8)
    with pytest.raises(LaglessError, match="positions"):
        inference_latency(tiny_bert(), None, seq_len=10_000)


def test_peak_train_memory_runs_for_every_method(tiny_dir):
    def probe(method: str) -> dict:  # kd-lora on a regression head covers the MSE-to-teacher loss
        return peak_train_memory(tiny_dir, method, LoraSettings(r=4), batch_size=2, seq_len=8,
                                 steps=1, regression=method == "kd-lora")

    with ThreadPoolExecutor(len(METHODS)) as pool:  # separate processes: they may overlap
        records = list(pool.map(probe, METHODS))
    for method, record in zip(METHODS, records, strict=True):
        assert record["peak_mb"] > 0 and math.isfinite(record["peak_mb"]), record
        assert record["method"] == method
        assert (record["trainable_params"] < record["total_params"]) == (method != "fft")


def test_peak_train_memory_user_errors(tiny_dir, tmp_path):
    with pytest.raises(LaglessError, match="unknown method"):
        peak_train_memory_mb(tiny_dir, "qlora")
    with pytest.raises(LaglessError, match="no config.json"):
        peak_train_memory_mb(tmp_path, "fft")


def test_size_on_disk_counts_weight_files(tiny_dir, tmp_path):
    weights = sum(p.stat().st_size for p in tiny_dir.glob("*.safetensors"))
    assert weights > 0
    assert model_size_on_disk_mb(tiny_dir) == pytest.approx(weights / 2**20)
    assert model_size_on_disk_mb(tmp_path) == 0.0
    with pytest.raises(LaglessError):
        model_size_on_disk_mb(tmp_path / "missing")


def test_report_is_a_plain_dict():
    total, trainable = count_parameters(tiny_bert())
    report = EfficiencyReport(total_params=total, trainable_params=trainable, disk_mb=1.5)
    assert report.to_dict() == {
        "total_params": total, "trainable_params": trainable, "peak_train_mem_mb": None,
        "latency_ms_b32": None, "throughput_per_s": None, "disk_mb": 1.5,
    }

"""The side-by-side table (text and JSON) and bar chart of the three methods of one task."""

from __future__ import annotations

from pathlib import Path

from lagless.runs import atomic_write_json, atomic_write_text

COLUMNS = [("method", "method", "{}"), ("score", "score", "{:.4f}"),
           ("total_params", "params (M)", "{:.2f}"), ("trainable_params", "trainable (M)", "{:.3f}"),
           ("peak_train_mem_mb", "peak train MB", "{:.0f}"), ("latency_ms_b32", "ms / batch 32", "{:.1f}"),
           ("disk_mb", "disk MB", "{:.1f}")]
MILLIONS = {"total_params", "trainable_params"}


def _cell(record: dict, key: str, fmt: str) -> str:
    value = record.get(key)
    if value is None:
        return "-"
    return fmt.format(value / 1e6 if key in MILLIONS else value)


def comparison_table(records: list[dict]) -> str:
    """A Markdown table, one row per method, plus each method relative to LoRA."""
    head = "| " + " | ".join(title for _, title, _ in COLUMNS) + " |"
    rule = "|" + "|".join("---" for _ in COLUMNS) + "|"
    rows = ["| " + " | ".join(_cell(r, k, f) for k, _, f in COLUMNS) + " |" for r in records]
    lines = [head, rule, *rows]
    lora = next((r for r in records if r["method"] == "lora"), None)
    kd = next((r for r in records if r["method"] == "kd-lora"), None)
    if lora and kd:
        lines.append("")
        lines.append(f"kd-lora vs lora: score {kd['score'] / lora['score']:.1%} of LoRA's"
                     if lora["score"] else "kd-lora vs lora: LoRA scored 0")
        for key, what in (("latency_ms_b32", "latency"), ("peak_train_mem_mb", "peak training memory"),
                          ("total_params", "parameters")):
            if kd.get(key) and lora.get(key):
                lines[-1] += f"; {what} {kd[key] / lora[key] - 1:+.0%}"
    return "\n".join(lines)


def _plot(records: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [("score", "dev score"), ("total_params", "parameters"), ("peak_train_mem_mb", "peak train memory"),
            ("latency_ms_b32", "latency (batch 32)")]
    keys = [(k, t) for k, t in keys if all(r.get(k) is not None for r in records)]
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 3.0))
    axes = axes if len(keys) > 1 else [axes]
    for ax, (key, title) in zip(axes, keys, strict=True):
        values = [r[key] / (1e6 if key in MILLIONS else 1) for r in records]
        ax.bar([r["method"] for r in records], values, color=["#4c72b0", "#dd8452", "#55a868"][: len(records)])
        ax.set_title(title + (" (M)" if key in MILLIONS else " (MB)" if "mem" in key else
                              " (ms)" if "latency" in key else ""))
    fig.suptitle(f"KD-LoRA on {records[0]['task']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_comparison(records: list[dict], out: str | Path) -> str:
    """Write ``OUT/comparison.{json,md,png}``; returns the table."""
    out = Path(out)
    table = comparison_table(records)
    atomic_write_json(out / "comparison.json", records)
    atomic_write_text(out / "comparison.md", table + "\n")
    _plot(records, out / "comparison.png")
    return table

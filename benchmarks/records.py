"""Shared by the benchmark scripts: the machine's description and locked merges of result records."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Callable
from pathlib import Path


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {model}"


def load_records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    text = path.read_text()
    return json.loads(text) if text.strip() else []


def merge_record(path: Path, rec: dict, key_fields: tuple[str, ...], sort_key: Callable[[dict], tuple]) -> None:
    """Read, replace the record with the same key, sort and write, under a lock (parallel sittings)."""
    import fcntl

    from lagless.runs import atomic_write_json

    key = tuple(rec[k] for k in key_fields)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        records = [r for r in load_records(path) if tuple(r.get(k) for k in key_fields) != key]
        records.append(rec)
        records.sort(key=sort_key)
        atomic_write_json(path, records)

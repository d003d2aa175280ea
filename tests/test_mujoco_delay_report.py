"""benchmarks/mujoco_delay.py's report: the skip / bound cell while a task's columns fill in."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))
import mujoco_delay


def _record(env: str, arch: str, obs_delay: int, ret: float) -> dict:
    return {"env": env, "arch": arch, "layers": 4, "tau": 1, "last_actions": 0 if arch == "chain" else 2,
            "obs_delay": obs_delay, "seed": 1, "steps": 1000, "precision": "fp32", "final_return": ret,
            "date": "2026-12-05T00:00:00+00:00", "machine": "test", "device": "cpu"}


def _rows(tmp_path: Path, records: list[dict]) -> dict[str, list[str]]:
    out, md = tmp_path / "r.json", tmp_path / "r.md"
    out.write_text(json.dumps(records))
    mujoco_delay.write_report(out, md, "test")
    rows = [line for line in md.read_text().splitlines() if line.startswith("| ") and "-v5" in line]
    return {r.split(" | ")[0][2:]: [c.strip() for c in r.strip("|").split("|")] for r in rows}


def test_ratio_is_shown_once_the_bound_exists_and_left_empty_before(tmp_path):
    rows = _rows(tmp_path, [_record("Ant-v5", "skip", 0, 90.0), _record("Ant-v5", "chain", 0, 30.0),
                            _record("Walker2d-v5", "skip", 0, 90.0), _record("Walker2d-v5", "instant", 1, 100.0)])
    ant, walker = rows["Ant-v5"], rows["Walker2d-v5"]
    assert ant[-2] == "" and ant[-1] == "yes"  # no bound yet: no ratio, but skip > chain is known
    assert walker[-2] == "0.90" and walker[-1] == ""  # no chain yet
    assert "nan" not in " ".join(ant + walker)

"""`lagless demo` end to end on a tiny budget: both runs, the table, the plot, the fused timing."""

from lagless.realtime.demo import run_demo


def test_demo_trains_both_agents_and_reports(tmp_path, capsys):
    rows = run_demo(tmp_path, steps=2048, layers=3)
    assert [r["agent"] for r in rows] == ["skip + last 4 actions", "chain"]
    assert [r["delay"] for r in rows] == ["1..3", "3..3"]
    assert all(r["steps"] >= 2048 for r in rows)
    assert (tmp_path / "comparison.png").stat().st_size > 0
    captured = capsys.readouterr()
    assert "fused executor on the trained skip actor" in captured.out
    assert "wall clock" in captured.out and "deadline misses" in captured.out
    # no terminal here: progress comes as plain lines a log file can hold, not cursor moves
    progress = [line for line in captured.err.splitlines() if line.startswith("[demo]")]
    assert progress and "2,048/2,048 steps" in progress[-1] and "\r" not in captured.err

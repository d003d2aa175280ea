"""Placeholder for the HTML report while it is built."""

from pathlib import Path


def write_report(out_dir) -> Path:
    path = Path(out_dir) / "report.html"
    path.write_text("<!DOCTYPE html><html><head><title>lagless explain</title></head><body></body></html>\n")
    return path

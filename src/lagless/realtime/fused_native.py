"""The fused step compiled as a C++ torch extension, built on first use and cached.

At batch 1 on a CPU the fused step's batched matmul is fast enough that the Python around it
shows: each torch call from Python costs about a microsecond of interpreter and argument
parsing. Measured on an idle 2-core EPYC (8 layers, 256 wide, batch 1, one thread, chain): the
Python step 1.68x its bare ``baddbmm``, the C++ step 1.25x; with its raw loops at batch 1-4
(2026-12-05) 1.08x, and 1.21x with two threads (``benchmarks/results/inference_speedup.md``).

The build needs a C++ compiler and ninja (the ``ninja`` wheel is a dependency); it takes
about half a minute once per machine and torch version, then loads from torch's extension
cache (``TORCH_EXTENSIONS_DIR``, default ``~/.cache/torch_extensions``). When it cannot be
built, the fused actor says why once and runs its Python step. ``LAGLESS_NATIVE=0`` turns
the native step off.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import threading
import warnings
from collections.abc import Callable
from pathlib import Path

SOURCE = Path(__file__).with_name("fused_native.cpp")


def native_enabled() -> bool:
    """False when the user turned the native step off (``LAGLESS_NATIVE=0``)."""
    return os.environ.get("LAGLESS_NATIVE", "1").strip().lower() not in ("0", "false", "no", "off")


@functools.lru_cache(maxsize=1)
def load() -> tuple[Callable | None, str]:
    """``(module, "")`` once built (cached), or ``(None, why not)``.

    ``module.LeanStep(*constants)`` holds one dense fused actor's buffers; calling it with
    ``(hidden, observation register, flat observation, episode_start or None)`` runs one step.
    ``module.ConvStep(constants, wide_sources)`` does the same for a network whose first stage
    is a convolution, called with the convolution's register after the observation register.
    """
    if not native_enabled():
        return None, "LAGLESS_NATIVE=0"
    if shutil.which(os.environ.get("CXX", "c++")) is None:
        return None, "no C++ compiler found (install g++, or set CXX)"
    _put_ninja_on_path()
    # a cached build loads in well under a second; say what is happening only when it compiles
    notice = threading.Timer(2.0, lambda: print("lagless: building the native fused step (first use "
                                                "only, about 30 s)...", file=sys.stderr, flush=True))
    notice.start()
    try:
        from torch.utils.cpp_extension import load as build

        module = build(name="lagless_fused_native", sources=[str(SOURCE)], extra_cflags=["-O3"],
                       verbose=False)
    except (RuntimeError, OSError, ImportError, subprocess.SubprocessError) as exc:  # acting goes on without it
        first = str(exc).strip().splitlines()
        return None, f"could not build it ({type(exc).__name__}: {first[0] if first else ''})"
    finally:
        notice.cancel()
    return module, ""


@functools.cache
def warn_unavailable(reason: str) -> None:
    """Say once per process (per reason) why the fused actor runs its Python step."""
    warnings.warn(f"lagless: fused actor runs its Python step: the native step is unavailable: {reason}",
                  RuntimeWarning, stacklevel=3)


def _put_ninja_on_path() -> None:
    """torch's builder runs ``ninja`` from PATH; the ``ninja`` wheel's binary is not on it outside a venv shell."""
    if shutil.which("ninja") is not None:
        return
    try:
        import ninja
    except ImportError:
        return
    os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")


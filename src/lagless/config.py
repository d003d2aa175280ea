"""Typed dataclass configs drive the command line, the Python API and ``config.json`` alike.

A field's ``metadata["help"]`` becomes its ``--help`` text; ``--config FILE.json`` supplies
values that flags then override. Unknown keys and wrong types are user errors.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from lagless.errors import LaglessError

C = TypeVar("C")


def option(default: Any, help: str, *, fixed: bool = False, **metadata: Any) -> Any:
    """A dataclass field with ``--help`` text.

    ``fixed``: the value shapes what a run saved (its network, environment or data), so
    ``--resume`` refuses to change it.
    """
    return dataclasses.field(default=default, metadata={"help": help, "fixed": fixed, **metadata})


def fixed_fields(cls: type) -> list[str]:
    """Names of the fields that a resumed run must keep."""
    return [f.name for f in dataclasses.fields(cls) if f.metadata.get("fixed")]


def check_resume_changes(saved: Any, wanted: Any, where: str) -> None:
    """Refuse a resume whose flags would change a fixed field of the saved run's config."""
    for name in fixed_fields(type(saved)):
        old, new = getattr(saved, name), getattr(wanted, name)
        if old != new:
            raise LaglessError(f"{flag_name(name)} cannot change when resuming ({where} was trained with "
                               f"{old!r}, the flags ask for {new!r}): drop the flag, or start a new run "
                               "with another --run-dir")


def _base_type(tp: Any) -> tuple[type, bool]:
    """(scalar type, optional?) of a field annotation such as ``int | None``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0], True
    return tp, False


def flag_name(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def add_config_arguments(parser: argparse.ArgumentParser, cls: type, exclude: tuple[str, ...] = ()) -> None:
    """Add one flag per dataclass field; defaults are suppressed so set flags can be told apart."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in exclude:
            continue
        tp, optional = _base_type(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        help_text = f.metadata.get("help", "")
        if "(default" not in help_text:  # some fields describe their default themselves
            help_text = f"{help_text} (default: {default})"
        kwargs: dict[str, Any] = {"default": argparse.SUPPRESS, "help": help_text, "dest": f.name}
        if tp is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = _none_or(tp) if optional else tp
            kwargs["metavar"] = f.metadata.get("metavar", f.name.upper())
        parser.add_argument(flag_name(f.name), **kwargs)


def _none_or(tp: type):
    def parse(text: str):
        return None if text.lower() in ("none", "") else tp(text)

    parse.__name__ = tp.__name__
    return parse


def load_config_json(path: str | Path, cls: type) -> dict[str, Any]:
    """Read a JSON config and check its keys and value types against ``cls``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise LaglessError(f"config file {path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise LaglessError(f"config file {path} is not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise LaglessError(f"config file {path} must hold a JSON object")
    return check_config_dict(data, cls, str(path))


def check_config_dict(data: dict[str, Any], cls: type, where: str) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise LaglessError(f"{where}: unknown config key(s) {', '.join(unknown)}")
    out = {}
    for key, value in data.items():
        tp, optional = _base_type(hints[key])
        if value is None and optional:
            out[key] = None
        elif tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = float(value)
        elif isinstance(value, tp) and not (tp is int and isinstance(value, bool)):
            out[key] = value
        else:
            raise LaglessError(f"{where}: '{key}' must be {tp.__name__}, got {value!r}")
    return out


def build_config(cls: type[C], namespace: argparse.Namespace, base: dict[str, Any] | None = None) -> C:
    """Dataclass defaults, then ``base`` (e.g. a JSON config), then the flags that were set."""
    values = dict(base or {})
    for f in dataclasses.fields(cls):
        if hasattr(namespace, f.name):
            values[f.name] = getattr(namespace, f.name)
    return cls(**values)


def config_to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)

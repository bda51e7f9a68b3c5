"""The one validating parser for the JSON we read: manifests, renderer settings, pose statistics,
calibration files, cached engine choices.

A dataclass is the schema: `parse(Cls, data, where, fix)` checks every field against its type
hint, refuses unknown and missing fields, and raises a one-line DanceNowError naming the file,
the field, what it should be and how to fix it. Nothing here evaluates or imports anything the
file names, so a file from a stranger can only be refused, never run.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from dancenow.errors import DanceNowError

T = TypeVar("T")
MAX_BYTES = 16 << 20  # no JSON file of ours is near this; a larger one is refused before parsing


def read_json(path: str | os.PathLike, what: str, fix: str) -> Any:
    """Parse a JSON file, or a DanceNowError saying which file, what is wrong, and `fix`."""
    path = Path(path)
    if not path.is_file():
        raise DanceNowError(f"{what} {path} not found: {fix}")
    if path.stat().st_size > MAX_BYTES:
        raise DanceNowError(f"{what} {path} is larger than {MAX_BYTES >> 20} MiB, not one of ours: {fix}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as e:  # also UnicodeDecodeError, and integers beyond 4300 digits
        raise DanceNowError(f"{what} {path} is not valid JSON ({type(e).__name__}): {fix}") from None


def parse(cls: type[T], data: Any, where: str, fix: str) -> T:
    """`cls` (a dataclass) built from parsed JSON `data`, every field type-checked."""
    return _dataclass(cls, data, where, "", fix)


def _dataclass(cls: type, data: Any, where: str, path: str, fix: str) -> Any:
    if not isinstance(data, dict):
        raise _wrong(where, path or "(top level)", "a JSON object", data, fix)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(k for k in data if k not in fields)
    if unknown:
        raise DanceNowError(f"{where}: unknown field {_name(path, str(unknown[0]))!r} "
                            f"(known: {', '.join(fields)}): {fix}")
    values = {}
    for name, f in fields.items():
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise DanceNowError(f"{where}: field {_name(path, name)!r} is missing: {fix}")
            continue
        values[name] = _value(hints[name], data[name], where, _name(path, name), fix)
    try:
        return cls(**values)
    except (TypeError, ValueError) as e:  # a __post_init__ that refuses a combination of values
        raise DanceNowError(f"{where}: {e}: {fix}") from None


def _value(hint: Any, v: Any, where: str, path: str, fix: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return v
    if origin in (typing.Union, types.UnionType):
        if v is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        for i, a in enumerate(options):
            try:
                return _value(a, v, where, path, fix)
            except DanceNowError:
                if i == len(options) - 1:
                    raise
    if dataclasses.is_dataclass(hint):
        return _dataclass(hint, v, where, path, fix)
    if hint is bool:
        if not isinstance(v, bool):
            raise _wrong(where, path, "true or false", v, fix)
        return v
    if hint is int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise _wrong(where, path, "a whole number", v, fix)
        return v
    if hint is float:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise _wrong(where, path, "a finite number", v, fix)
        return float(v)
    if hint is str:
        if not isinstance(v, str):
            raise _wrong(where, path, "a string", v, fix)
        return v
    if origin is tuple:
        if not isinstance(v, list) or (args[-1] is not Ellipsis and len(v) != len(args)):
            n = "a list" if args[-1] is Ellipsis else f"a list of {len(args)}"
            raise _wrong(where, path, n, v, fix)
        kinds = [args[0]] * len(v) if args[-1] is Ellipsis else list(args)
        return tuple(_value(a, x, where, f"{path}[{i}]", fix) for i, (a, x) in enumerate(zip(kinds, v, strict=True)))
    if origin is list or hint is list:
        if not isinstance(v, list):
            raise _wrong(where, path, "a list", v, fix)
        return [_value(args[0], x, where, f"{path}[{i}]", fix) for i, x in enumerate(v)] if args else v
    if origin is dict or hint is dict:
        if not isinstance(v, dict):
            raise _wrong(where, path, "a JSON object", v, fix)
        if not args:
            return v
        return {k: _value(args[1], x, where, _name(path, k), fix) for k, x in v.items()}
    raise TypeError(f"schema: no rule for {hint!r} at {path}")  # our own mistake, not the file's


def _name(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _wrong(where: str, path: str, want: str, got: Any, fix: str) -> DanceNowError:
    shown = json.dumps(got)[:40] if isinstance(got, (str, int, float, bool, type(None))) else type(got).__name__
    kind = {dict: "an object", list: "a list"}.get(type(got), shown)
    return DanceNowError(f"{where}: field {path!r} must be {want}, not {kind}: {fix}")

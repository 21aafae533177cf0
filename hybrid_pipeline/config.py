"""Dataclass configs from YAML files and ``key=value`` overrides.

Configs are plain (possibly nested) dataclasses whose defaults are the real defaults; a YAML file
holds only the values that differ, and command-line overrides use dotted keys
(``model.hidden_size=128``). Unknown keys and values of the wrong type fail at load, naming the key
and the file, before any work starts. This module imports nothing from the project, so any layer
may use it.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, Sequence, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A config that cannot be built; the message names the key and where it came from."""


def config_from_dict(cls: type[T], data: dict[str, Any], *, source: str = "config", prefix: str = "") -> T:
    """Build dataclass `cls` from a nested dict, rejecting unknown keys and coercing simple types."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: {prefix.rstrip('.') or 'top level'} should be a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    unknown = [k for k in data if k not in fields]
    if unknown:
        raise ConfigError(f"{source}: unknown key '{prefix}{unknown[0]}'; known keys of {prefix.rstrip('.') or cls.__name__}: "
                          + ", ".join(fields))
    kwargs = {name: _coerce(hints[name], value, source, f"{prefix}{name}") for name, value in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"{source}: {prefix}{e}" if prefix else f"{source}: {e}") from None


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain dict (tuples as lists) suitable for YAML/JSON."""
    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value
    return plain(config)


def flat_settings(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as dotted keys: {"search": {"budget": 300}} -> {"search.budget": 300}."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(flat_settings(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def with_implied(saved: dict[str, Any], implied: dict[str, Any]) -> dict[str, Any]:
    """A copy of `saved` settings completed from `implied`, which maps dotted keys ("model.layout") to
    the value a run recorded before that setting existed ran with (or to a function of the saved
    settings that gives it): each key is added where it is missing and its parent is there (a run
    that recorded no "model" gets no "model.layout"), so that resuming an older run compares like
    with like."""
    filled = json.loads(json.dumps(saved))
    for dotted, value in implied.items():
        *parents, last = dotted.split(".")
        node: Any = filled
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and last not in node:
            node[last] = value(saved) if callable(value) else value
    return filled


def changed_settings(before: dict[str, Any], now: dict[str, Any], free: Sequence[str] = ()) -> list[str]:
    """Each setting that differs between two runs, as "key old -> new" (dotted keys, in the order
    `now` gives them, then those only `before` had); keys whose first part is in `free` may change."""
    old, new = flat_settings(before), flat_settings(now)
    position = {k: i for i, k in enumerate(new)}
    keys = sorted(set(old) | set(new), key=lambda k: (0, position[k], "") if k in position else (1, 0, k))
    return [f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in keys
            if k.split(".")[0] not in free and old.get(k) != new.get(k)]


def load_config(cls: type[T], path: str | Path | None = None, overrides: Sequence[str] = ()) -> T:
    """`cls` defaults, updated by the YAML file at `path`, then by ``key=value`` overrides."""
    data: dict[str, Any] = {}
    source = "config"
    if path is not None:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"{path}: cannot read config: {e.strerror}") from None
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
            raise ConfigError(f"{path}: not valid YAML{where}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of keys to values at the top level")
    for override in overrides:
        key, sep, raw = override.partition("=")
        if not sep or not key:
            raise ConfigError(f"override '{override}': expected key=value")
        _set_dotted(data, key.strip(), yaml.safe_load(raw) if raw.strip() else None)
    return config_from_dict(cls, data, source=source if not overrides else f"{source} + overrides")


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    *parents, leaf = key.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override '{key}': '{part}' is not a section")
    node[leaf] = value


def _coerce(hint: Any, value: Any, source: str, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return _coerce(option, value, source, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0])
    if dataclasses.is_dataclass(hint):
        return config_from_dict(hint, value or {}, source=source, prefix=f"{key}.")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{source}: {key} is {value!r}, expected one of {', '.join(map(repr, args))}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: {key} is {value!r}, expected a list")
        item = args[0] if args else Any
        items = [_coerce(item, v, source, key) for v in value] if item is not Any else list(value)
        return tuple(items) if origin is tuple else items
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{source}: {key} is {value!r}, expected true or false")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{source}: {key} is {value!r}, expected an integer")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)  # YAML reads 1e-4 (no dot) as a string
            except ValueError:
                pass
        raise ConfigError(f"{source}: {key} is {value!r}, expected a number")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{source}: {key} is {value!r}, expected a string")
    return value

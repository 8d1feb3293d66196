"""Typed, validated job configuration: defaults < TOML file < ``--set key=value`` < explicit flags.

Each job declares its settings once, as a frozen dataclass whose fields carry help text and
constraints (:func:`option`). The same declaration drives the TOML loader, the ``--set`` parser,
the argparse flags and ``--help``, so a setting cannot be documented in one place and validated
differently in another. Unknown keys and bad values raise :class:`~embedpipe.errors.ConfigError`
naming the key.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from embedpipe.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

C = TypeVar("C")

_MISSING = dataclasses.MISSING

#: The one default seed of every seeded setting (the job's ``seed`` and the PyTorch core's params).
DEFAULT_SEED = 42


def option(
    default: Any = _MISSING,
    help: str = "",
    *,
    choices: tuple[Any, ...] | None = None,
    min: float | None = None,
    max: float | None = None,
    min_exclusive: bool = False,
    required: bool = False,
    flag: str | None = None,
    metavar: str | None = None,
    nested: bool = False,
) -> Any:
    """Declare one setting: its default, help text and the constraints checked on load.

    ``nested`` marks a field that holds a whole sub-section (e.g. a train method's settings): its
    owner builds and checks it, so it gets no flag, no coercion and no row of its own in the docs.
    """
    metadata = {
        "help": help,
        "choices": choices,
        "min": min,
        "max": max,
        "min_exclusive": min_exclusive,
        "required": required,
        "flag": flag,
        "metavar": metavar,
        "nested": nested,
    }
    if isinstance(default, (list, dict)):
        value = default
        return dataclasses.field(default_factory=lambda: type(value)(value), metadata=metadata)
    if default is _MISSING:
        default = None
        metadata["required"] = True
    return dataclasses.field(default=default, metadata=metadata)


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _base_type(tp: Any) -> tuple[Any, bool]:
    """Return (the non-None type, whether None is allowed)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _coerce(key: str, tp: Any, value: Any, *, from_text: bool) -> Any:
    """Turn a TOML value (or a CLI string when ``from_text``) into the field's type."""
    base, optional = _base_type(tp)
    if value is None or (from_text and optional and value in ("", "none", "None", "null")):
        if optional:
            return None
        raise ConfigError(f"config key '{key}' must not be empty")
    origin = typing.get_origin(base)
    try:
        if base is bool:
            if isinstance(value, bool):
                return value
            if from_text and isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
                return True
            if from_text and isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
                return False
            raise ValueError
        if base is int:
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, int):
                return value
            if from_text and isinstance(value, str):
                return int(value.replace("_", ""))
            raise ValueError
        if base is float:
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, (int, float)):
                result = float(value)
            elif from_text and isinstance(value, str):
                result = float(value)
            else:
                raise ValueError
            if not math.isfinite(result):
                raise ValueError
            return result
        if base is str:
            if isinstance(value, str):
                return value
            raise ValueError
        if origin is list:
            (item_type,) = typing.get_args(base)
            if from_text and isinstance(value, str):
                items: list[Any] = [v.strip() for v in value.split(",") if v.strip()]
            elif isinstance(value, (list, tuple)):
                items = list(value)
            else:
                raise ValueError
            return [_coerce(key, item_type, item, from_text=from_text) for item in items]
        if origin is dict:
            if not isinstance(value, dict):
                raise ValueError
            return {str(k): str(v) if not isinstance(v, bool) else str(v).lower() for k, v in value.items()}
    except ConfigError:
        raise
    except (TypeError, ValueError):
        pass
    else:
        raise ConfigError(f"config key '{key}' has an unsupported type {tp!r}")
    raise ConfigError(f"config key '{key}' must be {_type_name(base)}, got {value!r}")


def _type_name(tp: Any) -> str:
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a finite number"
    if tp is str:
        return "a string"
    if typing.get_origin(tp) is list:
        return "a list"
    if typing.get_origin(tp) is dict:
        return "a table of key = value"
    return str(tp)


def _check_constraints(key: str, field: dataclasses.Field, value: Any) -> None:
    meta = field.metadata
    if value is None:
        if meta.get("required"):
            raise ConfigError(f"config key '{key}' is required")
        return
    values = value if isinstance(value, list) else [value]
    for item in values:
        choices = meta.get("choices")
        if choices is not None and item not in choices:
            raise ConfigError(
                f"config key '{key}' must be one of {', '.join(map(str, choices))}, got {item!r}"
            )
        low, high = meta.get("min"), meta.get("max")
        if low is not None and isinstance(item, (int, float)):
            if item < low or (meta.get("min_exclusive") and item == low):
                relation = ">" if meta.get("min_exclusive") else ">="
                raise ConfigError(f"config key '{key}' must be {relation} {low}, got {item!r}")
        if high is not None and isinstance(item, (int, float)) and item > high:
            raise ConfigError(f"config key '{key}' must be <= {high}, got {item!r}")


def build_config(
    cls: type[C], values: dict[str, Any], *, from_text_keys: frozenset[str] = frozenset(), key_prefix: str = ""
) -> C:
    """Validate ``values`` against ``cls`` and construct it; unknown keys are rejected by name.

    ``key_prefix`` (e.g. ``"sgns."``) is put before every key named in an error, so a setting of a
    sub-section is reported the way the user writes it.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = _field_types(cls)
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown config key '{key_prefix}{unknown[0]}' (known keys: {', '.join(sorted(fields))})"
        )
    kwargs: dict[str, Any] = {}
    for name, field in fields.items():
        if name in values and field.metadata.get("nested"):
            value = values[name]  # built and checked by the owner of the section
        elif name in values:
            value = _coerce(key_prefix + name, hints[name], values[name], from_text=name in from_text_keys)
        elif field.default is not _MISSING:
            value = field.default
        elif field.default_factory is not _MISSING:  # type: ignore[misc]
            value = field.default_factory()  # type: ignore[misc]
        else:
            value = None
        _check_constraints(key_prefix + name, field, value)
        kwargs[name] = value
    instance = cls(**kwargs)
    validate = getattr(instance, "validate", None)
    if callable(validate):
        validate()
    return instance


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Parse a TOML config file into a dict of sections; syntax errors become ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text") from None


def parse_overrides(pairs: list[str]) -> dict[str, str]:
    """Parse repeatable ``--set key=value`` arguments (values stay text; typed later)."""
    result: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set expects key=value, got {pair!r}")
        result[key] = value.strip()
    return result


def flag_name(field: dataclasses.Field) -> str:
    return field.metadata.get("flag") or "--" + field.name.replace("_", "-")


def add_config_arguments(parser: argparse.ArgumentParser, cls: type, *, dest_prefix: str = "") -> None:
    """Add one ``--flag`` per field of ``cls``; defaults are suppressed so only given flags override."""
    hints = _field_types(cls)
    for field in dataclasses.fields(cls):
        if field.metadata.get("nested"):
            continue  # a sub-section: set in the config file or with --set section.key=value
        base, _ = _base_type(hints[field.name])
        meta = field.metadata
        help_text = meta.get("help", "")
        default = field.default if field.default is not _MISSING else (
            field.default_factory() if field.default_factory is not _MISSING else None  # type: ignore[misc]
        )
        if meta.get("required"):
            help_text += " (required)"
        elif default not in (None, [], {}):
            help_text += f" (default: {_show(default)})"
        if meta.get("choices"):
            help_text += f" [choices: {', '.join(map(str, meta['choices']))}]"
        dest = dest_prefix + field.name
        name = flag_name(field)
        if base is bool:
            parser.add_argument(name, dest=dest, action=argparse.BooleanOptionalAction,
                                default=argparse.SUPPRESS, help=help_text)
        elif typing.get_origin(base) is dict:
            continue  # tables are set in the config file or with --set key.sub=value
        else:
            parser.add_argument(name, dest=dest, default=argparse.SUPPRESS, help=help_text,
                                metavar=meta.get("metavar") or field.name.upper())


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


def resolve_config(
    cls: type[C],
    *,
    file_section: dict[str, Any] | None,
    overrides: dict[str, str],
    flags: dict[str, Any],
) -> C:
    """Merge the layers (file < --set < flags) and validate the result."""
    values: dict[str, Any] = dict(file_section or {})
    text_keys: set[str] = set()
    hints = _field_types(cls)
    for key, value in overrides.items():
        head, dot, tail = key.partition(".")
        if dot and head in hints and typing.get_origin(_base_type(hints[head])[0]) is dict:
            table = dict(values.get(head) or {})
            table[tail] = value
            values[head] = table
            continue
        values[key] = value
        text_keys.add(key)
    for key, value in flags.items():
        values[key] = value
        text_keys.add(key)
    return build_config(cls, values, from_text_keys=frozenset(text_keys))


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-friendly dict of a config dataclass (recorded in manifests and logs).

    A config with a ``to_dict`` method decides itself what is recorded (``TrainConfig`` leaves out
    the settings of methods other than the chosen one).
    """
    to_dict = getattr(config, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    return dataclasses.asdict(config)

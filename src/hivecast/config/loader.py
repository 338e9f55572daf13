"""Merging the three sources into one validated `Settings`, with errors a user can act on.

Precedence, lowest to highest: built-in defaults, the TOML file, HIVECAST_* environment
variables, command-line flags. Nested sections are written `[limits]` in TOML and
`HIVECAST_LIMITS__IDLE_TIMEOUT` in the environment.
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from hivecast.config.errors import ConfigError
from hivecast.config.settings import Settings

ENV_PREFIX = "HIVECAST_"
# Variables under this prefix belong to the test suite and tools, not to a node.
_ENV_IGNORED_PREFIXES = ("HIVECAST_TEST_",)


def _section_fields(model: type[BaseModel]) -> dict[str, type[BaseModel] | None]:
    out: dict[str, type[BaseModel] | None] = {}
    for name, field in model.model_fields.items():
        ann = field.annotation
        out[name] = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    return out


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except PermissionError:
        raise ConfigError(f"config file {path} is not readable") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def _from_env(environ: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    fields = _section_fields(Settings)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key, raw in environ.items():
        if not key.startswith(ENV_PREFIX) or key.startswith(_ENV_IGNORED_PREFIXES):
            continue
        parts = key[len(ENV_PREFIX):].lower().split("__")
        top = parts[0]
        if top not in fields:
            raise ConfigError(f"unknown setting {top!r} in environment variable {key}")
        section = fields[top]
        if len(parts) == 1:
            if section is not None:
                raise ConfigError(f"{key} names the section [{top}]; set {key}__<KEY> instead")
            values[top] = raw
            sources[top] = key
        elif len(parts) == 2 and section is not None:
            if parts[1] not in section.model_fields:
                raise ConfigError(f"unknown setting {top}.{parts[1]!r} in environment variable {key}")
            values.setdefault(top, {})[parts[1]] = raw
            sources[f"{top}.{parts[1]}"] = key
        else:
            raise ConfigError(f"unknown setting in environment variable {key}")
    return values, sources


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


def _flatten_sources(data: Mapping[str, Any], origin: str, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten_sources(value, origin, f"{name}."))
        out[name] = origin
    return out


def _describe(error: ValidationError, sources: Mapping[str, str]) -> str:
    first = error.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    message = "unknown setting" if first["type"] == "extra_forbidden" else first["msg"]
    where = sources.get(loc) or sources.get(loc.split(".")[0])
    value = first.get("input")
    shown = f" (got {value!r})" if first["type"] != "extra_forbidden" and not isinstance(value, dict) else ""
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"bad setting {loc}: {message}{shown}" + (f" [from {where}]" if where else "") + more


def check_data_dir(path: Path) -> None:
    """Create the data directory if needed and prove we can write to it."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise ConfigError(f"data directory {path} is not writable: {exc.strerror or exc}") from None


def load_settings(
    *,
    config_file: Path | None = None,
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    check_paths: bool = True,
) -> Settings:
    """Build the node's settings. Raises ConfigError with one clear line on any bad value."""
    data: dict[str, Any] = {}
    sources: dict[str, str] = {}
    if config_file is not None:
        file_data = _read_toml(config_file)
        data = _merge(data, file_data)
        sources.update(_flatten_sources(file_data, str(config_file)))
    env_data, env_sources = _from_env(os.environ if environ is None else environ)
    data = _merge(data, env_data)
    sources.update(env_sources)
    flag_data = {k: v for k, v in (flags or {}).items() if v is not None}
    data = _merge(data, flag_data)
    sources.update(_flatten_sources(flag_data, "command line"))
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, sources)) from None
    if check_paths:
        check_data_dir(settings.data_dir)
    return settings

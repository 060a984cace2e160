"""Reading a YAML config file, and a pydantic validation error as one line.

Every config model (data sources, quality, experiments, profiles) reads its file and reports
its errors through these two, so a bad file gets the same kind of message everywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from cvcatalog.exceptions import ConfigError


def load_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {p}") from None
    except OSError as e:
        raise ConfigError(f"cannot read config file {p}: {e.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {p} is not valid YAML: {str(e).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping at the top level")
    return data


def format_validation_error(err: ValidationError, origin: str) -> str:
    """The first problem, in one line, with the dotted field path."""
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    msg = first["msg"].removeprefix("Value error, ")
    extra = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    where = f"{loc}: " if loc else ""
    return f"invalid configuration ({origin}): {where}{msg}{extra}"

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
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {p}") from None
    except OSError as e:
        raise ConfigError(f"cannot read config file {p}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"config file {p} is not UTF-8 text (byte {e.start}: {e.reason}); YAML is read as UTF-8"
        ) from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: no Python objects
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {p} is not valid YAML: {_yaml_problem(e)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping at the top level")
    return data


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.safe_load's loader, but a key given twice in one mapping is an error: YAML keeps
    the last, so a second `download:` section silently dropped every field of the first."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *defaults`, then overrides
                continue
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, str | int | float) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"{key!r} is given twice", key_node.start_mark
                )
            if isinstance(key, str | int | float):
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _yaml_problem(err: yaml.YAMLError) -> str:
    """A YAML error in one line: where (line, column) and what, then while doing what."""
    if not isinstance(err, yaml.MarkedYAMLError):
        return str(err).splitlines()[0]
    mark = err.problem_mark or err.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    context = f" ({err.context})" if err.context and err.problem else ""
    return f"{where}{err.problem or err.context}{context}"


def format_validation_error(err: ValidationError, origin: str) -> str:
    """The first problem, in one line, with the dotted field path."""
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    msg = first["msg"].removeprefix("Value error, ")
    extra = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    where = f"{loc}: " if loc else ""
    return f"invalid configuration ({origin}): {where}{msg}{extra}"

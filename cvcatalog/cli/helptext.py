"""How `--help` names the value an option takes: a word for the user (DATE, SOURCE), never a
Python type. Typer 0.29 prints the annotation (`--path <list[str]>`, `--seed <int>`); an
option declared without a metavar gets its long name in capitals (`--seed SEED`), as
argparse names one, so a new option cannot bring a Python type back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer
from typer._click.core import Parameter
from typer.core import TyperCommand, TyperGroup, TyperOption


def default_metavar(param: Parameter) -> str:
    """The option's long name in capitals: --rows-per-file takes ROWS_PER_FILE."""
    long = [o for o in param.opts if o.startswith("--")]
    name = long[0][2:] if long else str(param.name)
    return name.replace("-", "_").upper()


def _name_values(params: list[Parameter]) -> None:
    """Give each option that takes a value and names none a metavar; a flag takes no value,
    and a choice (--format) keeps typer's list of its values (<table|json|csv>)."""
    for p in params:
        if not isinstance(p, TyperOption) or p.metavar is not None or p.is_flag:
            continue
        if not p.type_descriptor.is_choice:
            p.metavar = default_metavar(p)


class _Command(TyperCommand):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _name_values(self.params)


class _Group(TyperGroup):
    """A command group (its callback's options too: `runs --limit`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _name_values(self.params)


class Commands(typer.Typer):
    """A Typer whose commands and groups name their values for the user (module docstring)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(cls=_Group, **options)

    def command(self, *args: Any, **kwargs: Any) -> Callable[[Any], Any]:
        kwargs.setdefault("cls", _Command)
        return super().command(*args, **kwargs)

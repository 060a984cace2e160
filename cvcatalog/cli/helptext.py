"""How `--help` names the value an option or argument takes: a word for the user (DATE,
SOURCE, SQL), never a Python type. Typer 0.29 prints the annotation (`--path <list[str]>`,
`--seed <int>`, `sql <str>`) and a required argument as `{sql}`; an option declared without a
metavar gets its long name in capitals (`--seed SEED`), as argparse names one, and an
argument its name (`query [OPTIONS] SQL`), as click names one, so a new one cannot bring a
Python type back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer
from typer._click.core import Context, Parameter
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption


def default_metavar(param: Parameter) -> str:
    """The option's long name in capitals: --rows-per-file takes ROWS_PER_FILE."""
    long = [o for o in param.opts if o.startswith("--")]
    name = long[0][2:] if long else str(param.name)
    return name.replace("-", "_").upper()


class _Argument(TyperArgument):
    """An argument shown as click shows one: its metavar alone, in brackets when optional
    (`[NAME]`), and no Python type beside it in the help's Arguments section."""

    def get_usage_pieces(self, ctx: Context) -> list[str]:
        name = str(self.metavar) + ("..." if self.nargs != 1 else "")
        return [name if self.required else f"[{name}]"]

    def display_type_rich(self, ctx: Context) -> str | None:
        return None


def _name_values(params: list[Parameter]) -> None:
    """Give each option that takes a value and names none a metavar; a flag takes no value,
    and a choice (--format) keeps typer's list of its values (<table|json|csv>). An argument
    is named in capitals (SQL, RUN_ID) and shown as an _Argument."""
    for p in params:
        if isinstance(p, TyperArgument):
            p.metavar = p.metavar or str(p.name).upper()
            p.__class__ = _Argument  # the same parameter, shown as click shows one
            continue
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

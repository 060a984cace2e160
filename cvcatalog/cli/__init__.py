"""The thin Typer command line: argument parsing, one output helper, rich progress."""

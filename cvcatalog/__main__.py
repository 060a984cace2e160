"""`python -m cvcatalog` is the same as the `cvcatalog` command."""

from cvcatalog.cli.main import main

main()

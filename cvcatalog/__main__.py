"""`python -m cvcatalog` is the same as the `cvcatalog` command."""

from cvcatalog.cli.entry import main

main()

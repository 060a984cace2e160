"""`python -m cvcatalog` is the same as the `cvcatalog` command."""

from cvcatalog.cli import main

main()

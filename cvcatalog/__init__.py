"""cvcatalog: a local analytical catalog of the USDOT ITS CV Pilot sandbox bucket."""

import logging

__version__ = "0.1.0"

# A library's loggers must not print by themselves (Python's last-resort handler would write
# WARNINGs raw to stderr, e.g. in the middle of the CLI's output). Everything a user must know
# reaches them otherwise: a day's error, progress notes, quarantine reasons. Applications that
# want the detail configure logging as usual.
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = ["Catalog", "__version__"]


def __getattr__(name: str) -> object:
    """`from cvcatalog import Catalog`, imported on first use so `import cvcatalog.x` stays light."""
    if name == "Catalog":
        from cvcatalog.catalog import Catalog

        return Catalog
    raise AttributeError(f"module 'cvcatalog' has no attribute {name!r}")

"""cvcatalog: a local analytical catalog of the USDOT ITS CV Pilot sandbox bucket."""

__version__ = "0.1.0"

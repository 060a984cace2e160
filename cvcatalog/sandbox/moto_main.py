"""The moto server process of the sandbox (`python -m cvcatalog.sandbox.moto_main`): moto's own
server, with the list of its service modules read once instead of on every request.

moto's dispatcher asks `moto.backends.list_of_moto_modules()` which service a request's host
names, on every request, and that lists moto's package folder (~150 stat calls): about a
third of the server's CPU time for the small GETs and PUTs of an ingest. The folder does not
change while the server runs. Everything else, request log included, is moto's.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

import moto.backends
from moto.server import main

_MODULES = tuple(moto.backends.list_of_moto_modules())


def _modules() -> Iterable[str]:
    return _MODULES


if __name__ == "__main__":
    moto.backends.list_of_moto_modules = _modules
    main(sys.argv[1:])

"""The canonical schema of every (source, message type), one module per family.

`SCHEMAS` is the registry everything else reads: ingest, views, Dask meta and the docs.
"""

from __future__ import annotations

from cvcatalog.schemas import nycdot, thea, wydot_bsm, wydot_tim
from cvcatalog.schemas.base import MessageSchema, render_sql, struct_type, view_sql
from cvcatalog.sqlutil import list_literal, quote_ident, quote_literal

__all__ = [
    "SCHEMAS",
    "MessageSchema",
    "list_literal",
    "quote_ident",
    "quote_literal",
    "render_sql",
    "struct_type",
    "view_sql",
]

#: (source, message type) -> schema.
SCHEMAS: dict[tuple[str, str], MessageSchema] = {
    (s.source, s.message_type): s
    for family in (wydot_bsm, wydot_tim, thea, nycdot)
    for s in family.schemas()
}

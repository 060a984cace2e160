"""SQL as files: migrations/ (the state tables, applied in order), transforms/ (raw records to canonical rows) and views/ (view templates)."""

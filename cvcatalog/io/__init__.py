"""Bytes in and out: the S3 client stack, downloads, raw-file normalising, where the lake's files live (local or S3), quarantine entries, DuckDB extensions and the DuckLake table format."""

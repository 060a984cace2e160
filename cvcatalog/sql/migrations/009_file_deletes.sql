-- cvcatalog 0.3: incremental changes as deletes and inserts (issue 14). A day re-ingested with
-- --check-changes keeps its data files; the rows of each changed or removed S3 object are
-- deleted from them in the lake (DuckLake delete files) and the object's new rows arrive in a
-- new file. One row per (data file, object) whose rows the lake no longer shows: readers of the
-- files themselves (Dask frames, compaction) leave those rows out as the lake does.
CREATE TABLE file_deletes (
    path        VARCHAR NOT NULL,   -- the data file, relative to the catalog directory
    source_key  VARCHAR NOT NULL,   -- the S3 object whose rows are deleted from it
    run_id      VARCHAR,
    snapshot_id BIGINT              -- the lake snapshot that deleted them (NULL: not yet applied)
);

-- Change data capture bookkeeping (`cvcatalog ingest --check-changes`, `cvcatalog runs`).
-- Applied once by cvcatalog.db.migrate(). Older runs keep 0 and mode 'full'.

ALTER TABLE ingest_runs ADD COLUMN mode VARCHAR DEFAULT 'full';  -- full | incremental (--check-changes)
ALTER TABLE ingest_runs ADD COLUMN objects_added BIGINT DEFAULT 0;      -- new objects ingested (all objects of a newly built partition)
ALTER TABLE ingest_runs ADD COLUMN objects_changed BIGINT DEFAULT 0;    -- objects whose size or ETag changed, re-ingested
ALTER TABLE ingest_runs ADD COLUMN objects_removed BIGINT DEFAULT 0;    -- objects gone from the bucket, their rows dropped
ALTER TABLE ingest_runs ADD COLUMN objects_unchanged BIGINT DEFAULT 0;  -- objects listed and found identical (not fetched)
ALTER TABLE ingest_runs ADD COLUMN partitions_rewritten INTEGER DEFAULT 0;  -- partitions written (built or merged) by the run

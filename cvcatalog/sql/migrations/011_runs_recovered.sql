-- cvcatalog 0.3: records a run recovered from lines that held several records joined without a
-- newline (`{...}{...}`: each record converted as its own line, only the fragments quarantined).
-- The run's summary said so; `cvcatalog runs` now keeps it. Older runs read 0.
ALTER TABLE ingest_runs ADD COLUMN recovered BIGINT DEFAULT 0;

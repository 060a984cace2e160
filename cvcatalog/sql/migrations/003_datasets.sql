-- Datasets outside the CV Pilot bucket (cvcatalog.datasets: NGSIM, ...). Applied once by
-- cvcatalog.db.migrate(). Their partitions are not CV Pilot folder days, so they have their own
-- tables instead of `partitions` / `partition_files`.
--
-- An input (one file or object) is loaded as byte-range units. Each unit is committed in one
-- catalog transaction (the checkpoint of a resumable run). The views show, per input, only the
-- files of the fingerprint recorded in dataset_inputs: a rebuilt input becomes visible in the
-- transaction that commits its last unit, so a view never mixes an input's old and new data.

-- One row per published input: the version (fingerprint) the views show.
CREATE TABLE dataset_inputs (
    dataset       VARCHAR NOT NULL,      -- e.g. 'ngsim'
    uri           VARCHAR NOT NULL,      -- local path, https://... or s3://bucket/key
    scope         VARCHAR NOT NULL,      -- '*' or the row filter it was loaded with (e.g. 'location=us-101')
    fingerprint   VARCHAR NOT NULL,      -- ETag (S3, HTTP) or 'size:mtime_ns' (local file)
    size          BIGINT,
    last_modified TIMESTAMPTZ,
    units         INTEGER NOT NULL,
    rows          BIGINT NOT NULL DEFAULT 0,
    quarantined   BIGINT NOT NULL DEFAULT 0,
    run_id        VARCHAR,
    published_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (dataset, uri, scope)
);

-- One row per committed unit of work (a byte range of one version of one input).
CREATE TABLE dataset_units (
    dataset      VARCHAR NOT NULL,
    unit_id      VARCHAR NOT NULL,       -- '<uri>#<start>-<end>'
    scope        VARCHAR NOT NULL,
    fingerprint  VARCHAR NOT NULL,
    uri          VARCHAR NOT NULL,
    start_byte   BIGINT NOT NULL,
    end_byte     BIGINT NOT NULL,        -- exclusive
    status       VARCHAR NOT NULL CHECK (status IN ('complete')),
    rows         BIGINT NOT NULL DEFAULT 0,
    quarantined  BIGINT NOT NULL DEFAULT 0,
    skipped      BIGINT NOT NULL DEFAULT 0, -- rows left out by a filter (not errors)
    bytes        BIGINT NOT NULL DEFAULT 0, -- bytes fetched
    run_id       VARCHAR,
    committed_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (dataset, unit_id, scope, fingerprint)
);

-- Every Parquet (data) and NDJSON (quarantine) file of a committed unit, with its checksum.
CREATE TABLE dataset_files (
    path        VARCHAR PRIMARY KEY,     -- relative to the catalog directory
    dataset     VARCHAR NOT NULL,
    uri         VARCHAR NOT NULL,
    scope       VARCHAR NOT NULL,
    fingerprint VARCHAR NOT NULL,
    unit_id     VARCHAR NOT NULL,
    partition   VARCHAR NOT NULL,        -- e.g. 'location=us-101/date=2005-06-15'
    kind        VARCHAR NOT NULL CHECK (kind IN ('data', 'quarantine')),
    rows        BIGINT NOT NULL,
    bytes       BIGINT NOT NULL,
    sha256      VARCHAR NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);

-- The catalog state. Applied once by cvcatalog.db.migrate(); versions live in schema_migrations.

-- One row per cached partition (source / message type / folder day).
CREATE TABLE partitions (
    partition_key     VARCHAR PRIMARY KEY,   -- {source}/{message_type}/{YYYY}/{MM}/{DD}
    source            VARCHAR NOT NULL,
    message_type      VARCHAR NOT NULL,
    date              DATE NOT NULL,          -- folder day in the producer's clock
    status            VARCHAR NOT NULL CHECK (status IN ('complete', 'no_data', 'failed')),
    rows              BIGINT NOT NULL DEFAULT 0,
    quarantined       BIGINT NOT NULL DEFAULT 0,
    parquet_bytes     BIGINT NOT NULL DEFAULT 0,
    source_objects    INTEGER NOT NULL DEFAULT 0,
    source_bytes      BIGINT NOT NULL DEFAULT 0,
    schema_versions   INTEGER[],             -- metadata.schemaVersion values seen
    canonical_version INTEGER,               -- version of cvcatalog's canonical schema used
    error             VARCHAR,               -- why the partition failed
    run_id            VARCHAR,
    created_at        TIMESTAMPTZ NOT NULL,
    checked_at        TIMESTAMPTZ NOT NULL,  -- last time S3 was listed for it
    last_accessed     TIMESTAMPTZ            -- LRU clock
);

-- Every Parquet (data) and NDJSON (quarantine) file of a complete partition, with its checksum.
CREATE TABLE partition_files (
    path          VARCHAR PRIMARY KEY,       -- relative to the catalog directory
    partition_key VARCHAR NOT NULL,
    kind          VARCHAR NOT NULL CHECK (kind IN ('data', 'quarantine')),
    rows          BIGINT NOT NULL,
    bytes         BIGINT NOT NULL,
    sha256        VARCHAR NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL
);

-- The S3 objects each partition was built from.
CREATE TABLE source_objects (
    key           VARCHAR PRIMARY KEY,
    partition_key VARCHAR NOT NULL,
    size          BIGINT NOT NULL,
    etag          VARCHAR NOT NULL,
    last_modified TIMESTAMPTZ,
    run_id        VARCHAR
);

-- One row per `cvcatalog ingest` (or Catalog.ingest) invocation.
CREATE TABLE ingest_runs (
    run_id           VARCHAR PRIMARY KEY,
    started_at       TIMESTAMPTZ NOT NULL,
    finished_at      TIMESTAMPTZ,
    status           VARCHAR NOT NULL,       -- running | ok | failed | interrupted (killed; marked by a later run)
    source           VARCHAR,
    message_type     VARCHAR,
    start_date       DATE,
    end_date         DATE,
    timezone         VARCHAR,
    days_complete    INTEGER DEFAULT 0,
    days_no_data     INTEGER DEFAULT 0,
    days_failed      INTEGER DEFAULT 0,
    days_cached      INTEGER DEFAULT 0,
    rows             BIGINT DEFAULT 0,
    quarantined      BIGINT DEFAULT 0,
    bytes_downloaded BIGINT DEFAULT 0,
    parquet_bytes    BIGINT DEFAULT 0,
    list_requests    BIGINT DEFAULT 0,
    get_requests     BIGINT DEFAULT 0,
    seconds          DOUBLE,
    host             VARCHAR,
    pid              INTEGER,
    message          VARCHAR
);

-- Validation counts per ingest, partition and rule (quarantined records and kept warnings).
CREATE TABLE validation_reports (
    run_id        VARCHAR NOT NULL,
    partition_key VARCHAR NOT NULL,
    kind          VARCHAR NOT NULL CHECK (kind IN ('quarantine', 'warning')),
    rule          VARCHAR NOT NULL,
    count         BIGINT NOT NULL
);

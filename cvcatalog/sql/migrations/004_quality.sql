-- Data quality counts and configurations (cvcatalog.quality). Applied once by
-- cvcatalog.db.migrate(). Written by the ingest inside the same catalog transaction as the
-- partition they describe; read by `cvcatalog report quality`.

-- One row per ingest run, partition, rule and action. Zero counts are stored too: a partition
-- with rows here was evaluated, one without was not. A partition's current counts are those of
-- the run that wrote its current version (partitions.run_id); older runs' rows are history.
CREATE TABLE quality_stats (
    run_id        VARCHAR NOT NULL,
    source        VARCHAR NOT NULL,
    message_type  VARCHAR NOT NULL,
    partition_key VARCHAR NOT NULL,
    rule          VARCHAR NOT NULL,   -- rows | bounds | speed | accel | derived_speed |
                                      -- derived_accel | ordering | duplicates | outliers |
                                      -- gaps | smoothing
    action        VARCHAR NOT NULL,   -- flagged | removed | smoothed | gaps | segments |
                                      -- input | output (rule rows)
    count         BIGINT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL
);

-- The quality configuration of each run, as JSON with 'auto' values resolved (the bounds box
-- and gap threshold actually used).
CREATE TABLE quality_configs (
    run_id      VARCHAR PRIMARY KEY,
    config_json VARCHAR NOT NULL
);

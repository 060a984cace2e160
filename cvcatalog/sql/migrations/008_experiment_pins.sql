-- cvcatalog 0.3: an experiment pinned to a snapshot of the lake (issue 14). Its rows stay what
-- they were when it was first gathered: the snapshot never expires and its files are never
-- deleted while the pin exists (`cvcatalog experiments unpin NAME` releases it).
CREATE TABLE experiment_pins (
    name         VARCHAR PRIMARY KEY,   -- experiment.name of the YAML
    snapshot_id  BIGINT NOT NULL,
    source       VARCHAR NOT NULL,
    message_type VARCHAR NOT NULL,
    files        INTEGER NOT NULL,      -- data files of the experiment's table at the snapshot
    bytes        BIGINT NOT NULL,
    digest       VARCHAR NOT NULL,      -- sha256 over those files' paths, sizes and row counts
    pinned_at    TIMESTAMPTZ NOT NULL
);

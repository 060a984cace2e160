-- cvcatalog 0.3: the content of a dataset input (NGSIM), so the same bytes loaded under two names
-- (a local path and the s3:// object it was uploaded to, a copy elsewhere) are loaded once.
--
-- A unit's SHA-256 is computed while the load reads its bytes (no extra pass); an input version's
-- is computed over its units' when it is published. Units and inputs loaded by an earlier release
-- have none (NULL): a duplicate of such an input cannot be told without reading it again, and is
-- loaded (its rows then twice, as before) until that input is loaded again.
ALTER TABLE dataset_units ADD COLUMN sha256 VARCHAR;   -- of the unit's own bytes [start_byte, end_byte)
ALTER TABLE dataset_inputs ADD COLUMN sha256 VARCHAR;  -- of the version: its units' digests in order

-- An input version whose bytes are those of an input already published under another URI (with
-- the same scope, or the whole input '*'): not published, its units and files dropped, so a
-- re-run with the same fingerprint skips it without fetching. A record holds while the input
-- it names is published with same_as_fingerprint; it goes with that input (a new version,
-- eviction, cache clear).
CREATE TABLE dataset_duplicates (
    dataset             VARCHAR NOT NULL,
    uri                 VARCHAR NOT NULL,
    scope               VARCHAR NOT NULL,
    fingerprint         VARCHAR NOT NULL,  -- the version found to be a duplicate
    same_as_uri         VARCHAR NOT NULL,
    same_as_scope       VARCHAR NOT NULL,
    same_as_fingerprint VARCHAR NOT NULL,
    sha256              VARCHAR NOT NULL,
    run_id              VARCHAR,
    recorded_at         TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (dataset, uri, scope)
);

-- cvcatalog 0.3: the size and SHA-256 of every data file the lake knows, current or shown only
-- by older kept snapshots (time travel, pins). partition_files and dataset_files list only the
-- current files, so `cache verify` could not check a file only an older snapshot showed, nor
-- `--repair` know which good file has the same bytes. Each commit that changes the lake records
-- its current files here (state/checksums.py); a row goes once the lake forgets its file.
CREATE TABLE file_checksums (
    path   VARCHAR NOT NULL,   -- relative to the catalog directory
    bytes  BIGINT NOT NULL,
    sha256 VARCHAR NOT NULL
);
-- a catalog written before: its current files (those only older snapshots show are unrecorded:
-- verify checks their size against the lake's metadata)
INSERT INTO file_checksums
SELECT path, bytes, sha256 FROM partition_files WHERE kind = 'data'
UNION ALL
SELECT path, bytes, sha256 FROM dataset_files WHERE kind = 'data';

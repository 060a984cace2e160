-- Catalog-wide settings. lake_url: where the Parquet lake lives (absent: the local catalog
-- directory; s3://bucket/prefix: on S3). Recorded when the first files are written, never
-- switched afterwards (cvcatalog.state.settings.record_lake_url).
CREATE TABLE catalog_settings (
    key   VARCHAR PRIMARY KEY,
    value VARCHAR
);

-- cvcatalog 0.2: the catalog database is also the DuckLake's metadata database
-- (catalog.ducklake). The data tables and views live in the lake (cvcatalog.tables); this
-- records which definition of each lake view is installed, so a changed template recreates it.
CREATE TABLE lake_views (
    name   VARCHAR PRIMARY KEY,
    sha256 VARCHAR NOT NULL
);

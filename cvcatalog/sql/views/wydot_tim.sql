-- The canonical WYDOT TIM view: one row per TravelerDataFrame (a TIM without frames: one row) of
-- every complete partition.
--
-- Placeholders, filled by cvcatalog.schemas.view_sql:
--   {view}     the quoted view name
--   {columns}  the quoted canonical (Parquet) columns, in order
--   {files}    a DuckDB list literal of absolute Parquet paths (complete partitions only)
--
-- source, message_type, year, month and day come from the hive directory names, and date is
-- derived from them, so a filter on date (or year/month/day) skips whole files. Rows kept with
-- validation.drop_invalid_records = false stay visible; their invalid_reason is not NULL.
CREATE OR REPLACE VIEW {view} AS
SELECT
    {columns},
    source,
    message_type,
    make_date(year, month, day) AS date,
    year,
    month,
    day
FROM read_parquet(
    {files},
    hive_partitioning = true,
    hive_types = {'source': VARCHAR, 'message_type': VARCHAR, 'year': INTEGER, 'month': INTEGER, 'day': INTEGER}
)

-- The canonical NYCDOT EVENT view: one row per kept event of every complete partition.
--
-- Placeholders, filled by cvcatalog.schemas.view_sql:
--   {view}     the quoted view name
--   {columns}  the quoted canonical (Parquet) columns, in order
--   {files}    a DuckDB list literal of absolute Parquet paths (complete partitions only)
--
-- source, message_type, year, month, weekday (MON..SUN or NA) and time_bin (NT, AM, MD, PM, EV
-- or NA) come from the hive directory names, i.e. the bucket folder
-- nycdot/EVENT/YYYY/MM/{weekday}/{time bin}, so a filter on them skips whole files. There is no
-- date column: events carry no absolute time. Rows kept with
-- validation.drop_invalid_records = false stay visible; their invalid_reason is not NULL.
CREATE OR REPLACE VIEW {view} AS
SELECT
    {columns},
    source,
    message_type,
    year,
    month,
    weekday,
    time_bin
FROM read_parquet(
    {files},
    hive_partitioning = true,
    hive_types = {'source': VARCHAR, 'message_type': VARCHAR, 'year': INTEGER, 'month': INTEGER, 'weekday': VARCHAR, 'time_bin': VARCHAR}
)

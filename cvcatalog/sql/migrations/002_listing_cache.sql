-- Cached bucket listings for `cvcatalog discover` and `cvcatalog plan` (Catalog.discover/plan).
-- Applied once by cvcatalog.db.migrate(). Rows are reused for cache.listing_ttl_hours, then
-- replaced by a new listing; deleting rows is always safe (they are only a cache).

CREATE TABLE listing_cache (
    prefix    VARCHAR NOT NULL,      -- the listed S3 prefix, ending in '/'
    mode      VARCHAR NOT NULL CHECK (mode IN ('level', 'tree')),
                                     -- level: one ListObjectsV2 level with Delimiter='/';
                                     -- tree: every object below prefix, aggregated
    listed_at TIMESTAMPTZ NOT NULL,
    children  VARCHAR NOT NULL,      -- JSON. level: ["BSM", "TIM"] (child folder names);
                                     -- tree: {"01/00": [objects, bytes], ...} per first two
                                     -- path components below prefix (day/hour, weekday/bin)
    objects   BIGINT NOT NULL,       -- level: objects directly under prefix; tree: all below it
    bytes     BIGINT NOT NULL,
    PRIMARY KEY (prefix, mode)
);

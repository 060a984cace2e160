"""Operations on a built catalog: cache status/verify/repair/clear/evict, compaction, publishing to S3, opening a published catalog, and bucket discovery."""

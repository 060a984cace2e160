"""The catalog's state: the catalog database and its one write path, the state tables' reads and writes, the file layout, LRU access, the lake's tables and views, and migrating old catalogs."""

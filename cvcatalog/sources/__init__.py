"""Sources: one module per source of rows, each implementing the pipeline's contract
(:mod:`cvcatalog.pipeline.contract`).

* :mod:`cvcatalog.sources.bucket` -- what the CV Pilot bucket publishes and where (valid
  pairs, key layout, folder clocks, local day -> folder hours -> partitions);
* :mod:`cvcatalog.sources.cvpilot` -- CV Pilot days (one unit = one folder day);
* :mod:`cvcatalog.sources.ngsim` -- NGSIM-style trajectory files (one unit = one byte range).

"""

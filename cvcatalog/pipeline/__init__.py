"""The one ingest pipeline: plan units -> fetch -> convert -> stage -> commit, for every source.

* :mod:`~cvcatalog.pipeline.contract` -- what a source implements (:class:`Source`);
* :mod:`~cvcatalog.pipeline.run` -- the runner: threads, the retry policy, cancellation, the
  run record;
* :mod:`~cvcatalog.pipeline.stage` -- staging directories, staged files, placing them under
  fresh names;
* :mod:`~cvcatalog.pipeline.commit` -- batched commits through CatalogDB.write;
* :mod:`~cvcatalog.pipeline.report` -- the one progress protocol and summary type.

Sources live in :mod:`cvcatalog.sources`.
"""

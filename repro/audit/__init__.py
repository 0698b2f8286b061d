"""`audit`: read any study that GridSampler worked on, from nothing but its storage, and say
which grid points were never evaluated or evaluated more than once; `--enqueue-missing`
repairs it.

The flow, one module per step: ``read`` (storage URL -> plain trial records, creating
nothing), ``grids`` (records -> one audit per grid GridSampler stored), ``report`` (table and
JSON from those audits), ``repair`` (the missing points enqueued, once).
"""

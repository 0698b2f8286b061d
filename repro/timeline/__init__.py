"""The release timeline: every final Optuna release in a range measured with the harness, and
where the outcome changed (``python -m repro.timeline``; ``nox -s timeline``).

One module a step: ``releases`` (which releases) -> ``envs`` (one cached environment per
release) -> ``measure`` (the harness run inside each) -> ``records`` (the JSON records, their
outcomes and transitions) with ``changes`` (the upstream ``_grid.py`` changes that explain a
transition) -> ``render`` (Markdown) and ``plot`` (PNG), both from ``timeline.json`` alone.
``__main__`` is the command line. Nothing here imports Optuna; only the per-release
environments have it.
"""

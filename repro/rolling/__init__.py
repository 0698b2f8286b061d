"""Rolling upgrades: workers of two Optuna releases share one study.

``plan.py`` (which pairs, orders, seed policies, modes, storages) -> ``launch.py`` (one case:
a fresh storage, each worker a real ``<env python> -m repro worker`` subprocess in its own
release's environment, then ``collect``) -> ``records.py`` (plain records, outcomes, the JSON
file) -> ``verdict.py`` (a verdict and advice per pair, as data) -> ``section.py`` (the report
section's Markdown lines, from the JSON alone). ``__main__.py`` is the command line.
"""

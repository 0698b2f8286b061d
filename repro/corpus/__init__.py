"""Random search spaces compared across Optuna versions.

The flow, one module per step: ``strategies`` draws cases with Hypothesis once, ``cases`` keeps
them in ``results/corpus.json`` (values in a tagged encoding, so 1, 1.0, True and "1" stay apart);
``replay`` runs every case on the installed Optuna, with GridSampler and under the remedies
BruteForceSampler and the enqueued grid, and merges the runs, tagged with their ``case_id`` and
``remedy``, into ``results/optuna-<version>.json``; ``judge`` decides for one run whether every
grid point was evaluated (a remedy run by its remedy's row); ``shrink`` lets Hypothesis find the
smallest failing search space; ``records`` holds what replay and shrink measured beyond the runs
(``results/corpus-<version>.json``); ``report`` renders a Markdown section from those JSON files
alone. ``python -m repro.corpus --help`` lists the commands.

Nothing here but ``replay`` and ``shrink`` imports Optuna, and nothing but ``strategies`` and
``shrink`` imports Hypothesis.
"""

"""A new upstream bug report generated from the measurements: ``facts`` decides what the issue
says (plain data read from the JSON files), ``render`` writes it as Markdown in the fields of
Optuna's bug-report form, ``bundle`` writes the bodies and their attachments to
``results/upstream/``; ``script_run`` records the minimal reproduction's output, ``collect``
gathers CI's matrix results. Nothing here imports Optuna."""

"""Workers at scale: Optuna's gRPC storage proxy in front of a database (`python -m repro.scale`).
Needs the ``scale`` extra; ``extras`` says which piece is missing."""

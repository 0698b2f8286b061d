"""``nox -s bench``: what the harness costs. Per storage, the harness's default scenario
(``sequential-none-<storage>-w4-g24``) is timed next to the same work done by a plain script
(``plain.py``), interleaved (``measure.py``), and both times, their ratio and the workers'
start-up go to ``results/bench.json`` (``records.py``); ``__main__.py`` is the command line."""

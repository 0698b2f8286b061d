# /// script
# requires-python = ">=3.9"
# dependencies = ["optuna"]
# ///
"""Four processes, one after another, share one study; process i passes seed=1000 + i."""

import json
import multiprocessing
import os
import sys
import tempfile

import optuna

SPACE = {"x": [0, 1, 2, 3, 4, 5], "y": ["a", "b", "c", "d"]}
GRID, WORKERS = 24, 4


def objective(trial: optuna.Trial) -> float:
    x = trial.suggest_categorical("x", SPACE["x"])
    trial.suggest_categorical("y", SPACE["y"])
    return float(x)


def worker(url: str, index: int) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    sampler = optuna.samplers.GridSampler(SPACE, seed=1000 + index)
    study = optuna.load_study(study_name="grid", storage=url, sampler=sampler)
    cap = optuna.study.MaxTrialsCallback(GRID, states=None)
    study.optimize(objective, n_trials=GRID // WORKERS, callbacks=[cap])


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{os.path.join(tmp, 'grid.db')}"
        optuna.create_study(study_name="grid", storage=url)
        for index in range(WORKERS):  # a fresh interpreter per process
            process = multiprocessing.get_context("spawn").Process(target=worker, args=(url, index))
            process.start()
            process.join()
            if process.exitcode:
                sys.exit(f"worker {index} exited with {process.exitcode}")
        points = [
            (t.params["x"], t.params["y"])
            for t in optuna.load_study(study_name="grid", storage=url).trials
        ]
    found = {"trials": len(points), "missing": GRID - len(set(points))}
    found["duplicates"] = len(points) - len(set(points))
    print(json.dumps({"optuna": optuna.__version__, **found}))

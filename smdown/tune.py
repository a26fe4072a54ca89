"""Hyper-parameters of one member chosen by validation: Bayesian optimisation (Optuna's TPE sampler).

Each trial trains the member for a short budget of epochs with the trial's values and scores the best
validation loss (the standardised coarse values of held-out cells and days, as in training). The reference
study tuned its members the same way; here every model x layer gets its own values, since no single L2
penalty or learning rate is right for every layer and world.
"""

from __future__ import annotations

import logging
import math

import pandas as pd

from smdown.train import train_deep

log = logging.getLogger(__name__)


def _suggest(trial, name: str, bounds: dict):
    if isinstance(bounds.get("choices"), list):
        return trial.suggest_categorical(name, bounds["choices"])
    low, high = float(bounds["low"]), float(bounds["high"])
    if bounds.get("log") and low <= 0:
        raise ValueError(f"tune.space.{name}: a log range needs low > 0, got {low}")
    return trial.suggest_float(name, low, high, log=bool(bounds.get("log")))


def start_points(space: dict, count: int) -> list[dict]:
    """`count` first trials spread evenly over each range (geometric for a log range, cycling through choices),
    so the sampler starts from the whole range, not from a few random draws."""
    import numpy as np

    points = [{} for _ in range(count)]
    for name, bounds in space.items():
        if isinstance(bounds.get("choices"), list):
            values = [bounds["choices"][i % len(bounds["choices"])] for i in range(count)]
        else:
            spread = np.geomspace if bounds.get("log") else np.linspace
            values = [float(v) for v in spread(float(bounds["low"]), float(bounds["high"]), count + 2)[1:-1]]
        for point, value in zip(points, values, strict=True):
            point[name] = value
    return points


def search(kind: str, samples: dict, hp: dict, settings: dict, seed: int, aggregate: bool,
           n_dynamic: int | None = None) -> tuple[dict, pd.DataFrame]:
    """Best values of `settings["space"]` (name -> {low, high, log} or {choices}) after `settings["trials"]`
    trials of `settings["epochs"]` epochs each; returns (best values, one row per trial)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = settings["space"]
    unknown = sorted(set(space) - set(hp))
    if unknown:
        raise ValueError(f"tune.space: {unknown} are not hyper-parameters of config 'models' {sorted(hp)}")
    start = min(settings["startup_trials"], settings["trials"])
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed,
                                                                                         n_startup_trials=start))
    for point in start_points(space, start):
        study.enqueue_trial(point)
    base = {**hp, "epochs": settings["epochs"], "patience": min(hp["patience"], settings["epochs"])}

    def objective(trial) -> float:
        values = {name: _suggest(trial, name, bounds) for name, bounds in space.items()}
        _, history = train_deep(kind, samples, {**base, **values}, seed, aggregate, n_dynamic)
        loss = float(history["val_loss"].min())
        log.info("%s trial %d/%d %s: val_loss %.4e", kind, trial.number + 1, settings["trials"], values, loss)
        return loss if math.isfinite(loss) else float("inf")

    study.optimize(objective, n_trials=settings["trials"])
    trials = pd.DataFrame([{"trial": t.number, **t.params, "val_loss": t.value} for t in study.trials])
    log.info("%s: best %s (val_loss %.4e)", kind, study.best_params, study.best_value)
    return dict(study.best_params), trials

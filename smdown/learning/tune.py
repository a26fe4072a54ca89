"""Hyper-parameters of one member chosen by validation: Bayesian optimisation (Optuna's TPE sampler).

Each trial trains the member for a short budget of epochs with the trial's values and scores it by the
self-similarity check (smdown.learning.similarity: within-cell skill one level up, on pairs of neighbouring training cells),
or by the coarse validation loss where that check cannot run. The reference study tuned its members by Bayesian
optimisation too; here every model x layer gets its own values, since no single L2 penalty is right for every layer
and world, and the coarse validation loss alone always prefers the weakest penalty (it cannot see the detail inside
a cell, which a weak penalty exaggerates on some worlds).
"""

from __future__ import annotations

import logging
import math

import pandas as pd

from smdown.learning import similarity
from smdown.learning.models import predict_examples
from smdown.learning.train import train_deep

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


def _objective_data(samples: dict, seed: int, aggregate: bool) -> dict | None:
    """The neighbour-pair samples of the self-similarity check, or None where it cannot run (then the coarse
    validation loss is the objective)."""
    import numpy as np

    if not aggregate:
        return None
    n_train_bags = len(np.unique(samples["bag"][samples["split"] == 0]))
    pairs = similarity.pair_samples(samples, np.random.default_rng(seed), max_pairs=n_train_bags)
    if pairs is None:
        log.warning("too few neighbouring training cells for the self-similarity check: tuning by the coarse "
                    "validation loss, which cannot see the detail inside a cell")
    return pairs


def search(kind: str, samples: dict, hp: dict, settings: dict, seed: int, aggregate: bool,
           n_dynamic: int | None = None) -> tuple[dict, pd.DataFrame]:
    """Best values of `settings["space"]` (name -> {low, high, log} or {choices}) after `settings["trials"]`
    trials of `settings["epochs"]` epochs each; returns (best values, one row per trial).

    With bags (target aggregate) on a region with neighbouring training cells, a trial is scored by the
    self-similarity check (smdown.learning.similarity: the member trained on pairs of neighbouring cells, scored on how well
    it recovers the difference between them on days it was not fitted on); otherwise by the coarse validation loss.
    """
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

    pairs = _objective_data(samples, seed, aggregate)

    def objective(trial) -> float:
        values = {name: _suggest(trial, name, bounds) for name, bounds in space.items()}
        model, history = train_deep(kind, pairs or samples, {**base, **values}, seed, aggregate, n_dynamic)
        trial.set_user_attr("val_loss", float(history["val_loss"].min()))
        if pairs is not None:
            skill = similarity.within_pair_skill(predict_examples(kind, model, pairs), pairs)
            for name, value in skill.items():
                trial.set_user_attr(f"similarity_{name}", value)
        loss = trial.user_attrs["similarity_nmse" if pairs is not None else "val_loss"]
        log.info("%s trial %d/%d %s: %s", kind, trial.number + 1, settings["trials"], values, trial.user_attrs)
        return loss if math.isfinite(loss) else float("inf")

    study.optimize(objective, n_trials=settings["trials"])
    trials = pd.DataFrame([{"trial": t.number, **t.params, "objective": t.value, **t.user_attrs}
                           for t in study.trials])
    log.info("%s: best %s (objective %.4e, %s)", kind, study.best_params, study.best_value,
             "self-similarity" if pairs is not None else "coarse validation loss")
    return dict(study.best_params), trials

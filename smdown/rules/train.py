"""Steps of workflow/rules/train.smk: the tuning and the training of one deep member, or the random-forest peer,
of one layer."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from smdown import io, models
from smdown import samples as sampling
from smdown import train as training
from smdown.features import FeatureSpec

log = logging.getLogger(__name__)


def _meta(kind: str, features: list[str], model_inputs: dict, seed: int) -> dict:
    spec = FeatureSpec.from_dict(model_inputs["spec"])
    return {"name": kind, "features": features, "signature": models.signature(spec.names, model_inputs),
            **model_inputs, "seed": seed}


def tune_member(kind: str, sample_paths: list[str], output: str, hp: dict, settings: dict, model_inputs: dict,
                seed: int) -> None:
    """<model>_tuned.json: the hyper-parameters chosen by validation (`settings`: config tune) and every trial."""
    from smdown.tune import search

    pooled = sampling.load(sample_paths)
    n_dynamic = FeatureSpec.from_dict(model_inputs["spec"]).n_dynamic
    best, trials = search(kind, pooled, hp, settings, seed, model_inputs["target"] == "aggregate", n_dynamic)
    io.write_json(output, {"params": best, "trials": trials.to_dict(orient="records")})


def fit_member(kind: str, sample_paths: list[str], outputs: dict[str, str], hp: dict, model_inputs: dict,
               seed: int, tuned: str | None = None) -> None:
    """A deep member (`hp`: config models, overridden by the `tuned` file of rule tune when given; `model_inputs`:
    what its inputs mean) -> model, meta, history."""
    pooled = sampling.load(sample_paths)
    n_dynamic = FeatureSpec.from_dict(model_inputs["spec"]).n_dynamic
    if tuned:
        chosen = json.loads(Path(tuned).read_text())["params"]
        log.info("%s: tuned hyper-parameters %s", kind, chosen)
        hp = {**hp, **chosen}
    model, history = training.train_deep(kind, pooled, hp, seed, model_inputs["target"] == "aggregate", n_dynamic)
    with io.atomic_path(outputs["model"]) as tmp:
        model.save(tmp)
    io.write_csv(outputs["history"], history)
    log.info("%s: best val_loss %.4e at epoch %d", kind, history["val_loss"].min(),
             int(history.loc[history["val_loss"].idxmin(), "epoch"]))
    meta = _meta(kind, [str(f) for f in pooled["features"]], model_inputs, seed)
    models.save_meta(outputs["meta"], {**meta, "hyper_parameters": hp})


def fit_rf(sample_paths: list[str], outputs: dict[str, str], settings: dict, model_inputs: dict, seed: int) -> None:
    """The random-forest peer (`settings`: config rf) -> model (joblib) and meta."""
    import joblib

    pooled = sampling.load(sample_paths)
    model = training.train_rf(pooled, settings, seed, n_jobs=int(os.environ.get("SMDOWN_THREADS", 1)))
    with io.atomic_path(outputs["model"]) as tmp:
        joblib.dump(model, tmp)
    models.save_meta(outputs["meta"], _meta("rf", [str(f) for f in pooled["features"]], model_inputs, seed))

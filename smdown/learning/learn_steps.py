"""The learning stage's steps, one function per rule of workflow/rules/train.smk, ensemble.smk and sensitivity.smk:
tuning and training one deep member of one layer, the random-forest peer, the members' weights from validation skill,
and the sensitivity tables (permutation importance, response curves; rule sensitivity_figure draws them). Each takes
file paths and the settings its rule passes as `params:`, calls the stage's science modules and writes its outputs.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from smdown import io
from smdown.learning import ensemble as combining
from smdown.learning import models
from smdown.learning import train as training
from smdown.learning.sensitivity import sensitivity_tables, validation_subset
from smdown.preparing import samples as sampling
from smdown.preparing.features import FeatureSpec

log = logging.getLogger(__name__)


# ------------------------------------------------------------ train
def _meta(kind: str, features: list[str], model_inputs: dict, seed: int) -> dict:
    spec = FeatureSpec.from_dict(model_inputs["spec"])
    return {"name": kind, "features": features, "signature": models.signature(spec.names, model_inputs),
            **model_inputs, "seed": seed}


def tune_member(kind: str, sample_paths: list[str], output: str, hp: dict, settings: dict, model_inputs: dict,
                seed: int) -> None:
    """<model>_tuned.json: the hyper-parameters chosen by validation (`settings`: config tune) and every trial."""
    from smdown.learning.tune import search

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


def fit_rf(sample_paths: list[str], outputs: dict[str, str], settings: dict, model_inputs: dict, seed: int,
           threads: int = 1) -> None:
    """The random-forest peer (`settings`: config rf) -> model (joblib) and meta, fitted on `threads` cores."""
    import joblib

    pooled = sampling.load(sample_paths)
    model = training.train_rf(pooled, settings, seed, n_jobs=threads)
    with io.atomic_path(outputs["model"]) as tmp:
        joblib.dump(model, tmp)
    models.save_meta(outputs["meta"], _meta("rf", [str(f) for f in pooled["features"]], model_inputs, seed))


# ------------------------------------------------------------ ensemble
def similarity_of(tuned_paths: list[str]) -> dict[str, dict]:
    """Each tuned member's self-similarity check under its chosen hyper-parameters (the best trial of rule tune)."""
    checks = {}
    for path in tuned_paths:
        result = json.loads(Path(path).read_text())
        best = min(result["trials"], key=lambda trial: trial["objective"])
        if "similarity_nmse" in best:
            checks[Path(path).name.removesuffix("_tuned.json")] = {
                key: best[key] for key in ("similarity_nmse", "similarity_r", "similarity_ratio")}
    return checks


def candidates(predictions: dict, flat: dict[str, bool], forest: bool) -> dict:
    """The members the weights are shared among: the deep ones and, where `forest`, the random forest; those that
    collapsed are left out (all of them are kept, with a warning, when every one collapsed)."""
    joins = {name: p for name, p in predictions.items() if name != "rf" or forest}
    kept = {name: p for name, p in joins.items() if not flat[name]}
    if not kept:
        log.warning("every member collapsed: equal weights, the maps hold no detail inside the coarse cells")
        return joins
    return kept


def weigh(model_paths: list[str], sample_paths: list[str], output: str, weighting: str, model_inputs: dict,
          tuned_paths: list[str] = (), forest: bool = False, threads: int = 1) -> None:
    """weights.csv: each member's weight (`weighting`: config ensemble.weighting), validation metrics and, when
    tuned, its self-similarity check (`tuned_paths`: the files of rule tune). The random forest is weighted with the
    deep members where `forest` (config ensemble.forest), else it has weight 0 (the peer, not a member)."""
    members = training.load_members(model_paths, model_inputs, threads)
    val = training.subset(sampling.load(sample_paths), 1)
    predictions = {name: m.predict_samples(val) for name, m in members.items()}
    spread = {name: combining.within_bag_std(p, val["bag"]) for name, p in predictions.items()}
    target = val["target"]
    if model_inputs["target"] == "aggregate":  # skill on the coarse value each bag must reproduce
        predictions = {name: training.bag_means(p, val["bag"]) for name, p in predictions.items()}
        target = training.bag_means(target, val["bag"])
    flat = combining.collapsed(spread, target)
    for name in (n for n, is_flat in flat.items() if is_flat):
        log.warning("%s collapsed: within-cell spread %.2e against coarse spread %.2e; weight 0", name, spread[name],
                    float(target.std()))
    joined = candidates(predictions, flat, forest)
    checks = similarity_of(list(tuned_paths))
    within_error = {name: check["similarity_nmse"] for name, check in checks.items()}
    if weighting == "within_cell" and not all(name in within_error for name in joined):
        log.warning("within_cell weighting needs the self-similarity check of every member (tune enabled, target "
                    "aggregate, neighbouring training cells): inverse_mse instead")
        weighting = "inverse_mse"
    w = combining.weights(joined, target, weighting, within_error)
    table = combining.member_table(predictions, target, w, spread, flat)
    if checks:
        for key in ("similarity_nmse", "similarity_r", "similarity_ratio"):
            table[key] = [checks.get(name, {}).get(key, float("nan")) for name in table["member"]]
    log.info("weights (%s): %s", weighting, w)
    log.info("validation metrics:\n%s", table.to_string(index=False))
    io.write_csv(output, table)


# ------------------------------------------------------------ sensitivity
def sensitivity(layer: str, model_paths: list[str], sample_paths: list[str], outputs: dict[str, str],
                settings: dict, model_inputs: dict, seed: int, threads: int = 1) -> None:
    """importance.csv and response.csv (`settings`: config sensitivity; `threads`: the forest's); rule
    sensitivity_figure draws them."""
    members = training.load_members([str(p) for p in model_paths], model_inputs, threads)
    aggregate = model_inputs["target"] == "aggregate"
    samples = validation_subset(sampling.load([str(p) for p in sample_paths]), settings["samples"], seed,
                                by_bag=aggregate)
    log.info("%s: %d validation examples%s, %d features, models %s", layer, len(samples["target"]),
             f" in {len(np.unique(samples['bag']))} bags" if aggregate else "", len(samples["features"]),
             sorted(members))
    bags = samples["bag"] if aggregate else None
    importance, response = sensitivity_tables(members, samples, settings, seed, bags)
    io.write_csv(outputs["importance"], importance)
    io.write_csv(outputs["response"], response)

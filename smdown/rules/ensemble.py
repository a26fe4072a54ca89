"""Step of workflow/rules/ensemble.smk: member weights from validation skill."""

from __future__ import annotations

import logging

from smdown import ensemble as combining
from smdown import io
from smdown import samples as sampling
from smdown import train as training

log = logging.getLogger(__name__)


def weigh(model_paths: list[str], sample_paths: list[str], output: str, weighting: str, model_inputs: dict) -> None:
    """weights.csv: each member's weight (`weighting`: config ensemble.weighting) and validation metrics."""
    members = training.load_members(model_paths, model_inputs)
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
    deep = {name: p for name, p in predictions.items() if name != "rf" and not flat[name]}
    if not deep:
        log.warning("every deep member collapsed: equal weights, the maps hold no detail inside the coarse cells")
        deep = {name: p for name, p in predictions.items() if name != "rf"}
    w = combining.weights(deep, target, weighting)
    table = combining.member_table(predictions, target, w, spread, flat)
    log.info("weights (%s): %s", weighting, w)
    log.info("validation metrics:\n%s", table.to_string(index=False))
    io.write_csv(output, table)

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
    target = val["target"]
    if model_inputs["target"] == "aggregate":  # skill on the coarse value each bag must reproduce
        predictions = {name: training.bag_means(p, val["bag"]) for name, p in predictions.items()}
        target = training.bag_means(target, val["bag"])
    deep = {name: p for name, p in predictions.items() if name != "rf"}
    w = combining.weights(deep, target, weighting)
    table = combining.member_table(predictions, target, w)
    log.info("weights (%s): %s", weighting, w)
    log.info("validation metrics:\n%s", table.to_string(index=False))
    io.write_csv(output, table)

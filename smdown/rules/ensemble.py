"""Step of workflow/rules/ensemble.smk: member weights from validation skill."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from smdown import ensemble as combining
from smdown import io
from smdown import samples as sampling
from smdown import train as training

log = logging.getLogger(__name__)


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
          tuned_paths: list[str] = (), forest: bool = False) -> None:
    """weights.csv: each member's weight (`weighting`: config ensemble.weighting), validation metrics and, when
    tuned, its self-similarity check (`tuned_paths`: the files of rule tune). The random forest is weighted with the
    deep members where `forest` (config ensemble.forest), else it has weight 0 (the peer, not a member)."""
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

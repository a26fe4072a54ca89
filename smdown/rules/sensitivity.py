"""Step of workflow/rules/sensitivity.smk: permutation importance and response curves of one layer's models."""

from __future__ import annotations

import logging

import numpy as np

from smdown import io
from smdown import samples as sampling
from smdown.sensitivity import sensitivity_tables, validation_subset
from smdown.train import load_members

log = logging.getLogger(__name__)


def sensitivity(layer: str, model_paths: list[str], sample_paths: list[str], outputs: dict[str, str],
                settings: dict, model_inputs: dict, seed: int) -> None:
    """importance.csv, response.csv and sensitivity.png (`settings`: config sensitivity)."""
    from smdown import plots

    members = load_members([str(p) for p in model_paths], model_inputs)
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
    plots.plot_sensitivity(importance, response, outputs["figure"], title=f"{layer}: sensitivity")

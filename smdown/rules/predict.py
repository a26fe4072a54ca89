"""Step of workflow/rules/predict.smk: the 30 m maps of every member, the ensemble and its spread."""

from __future__ import annotations

import logging

import pandas as pd

from smdown.features import FeatureSpec
from smdown.rules import factor_of
from smdown.train import load_members

log = logging.getLogger(__name__)


def predict(model_paths: list[str], weights_path: str, rasters: dict[str, str], coarse: str, scale: str,
            outputs: dict[str, str], settings: dict, model_inputs: dict) -> None:
    """`settings`: config predict; `model_inputs`: what the members' inputs mean (checked against each model)."""
    from smdown.predict import predict_layer

    members = load_members(model_paths, model_inputs)
    table = pd.read_csv(weights_path)
    member_weights = {row.member: float(row.weight) for row in table.itertuples() if row.member != "rf"}
    factor = factor_of(scale, coarse)
    spec = FeatureSpec.from_dict(model_inputs["spec"])
    clipped = predict_layer(members, member_weights, spec, rasters, coarse, factor, outputs,
                            settings["block_cells"], settings["correction"], tuple(settings["valid_range"]))
    for name, count in clipped.items():
        log.info("%s: %d values outside %s clipped", name, count, settings["valid_range"])


"""The mapping stage's prediction steps (rules predict and predict_rf of workflow/rules/predict.smk).

predict: the 30 m maps of the deep members, the ensemble and its spread; predict_rf: the map of the random-forest
peer (also a member of the ensemble, predicted inside predict, where config ensemble.forest is on).
"""

from __future__ import annotations

import logging

import pandas as pd

from smdown.grid import Tile
from smdown.jobs import factor_of
from smdown.learning.train import load_members
from smdown.mapping.blocks import predict_layer
from smdown.preparing.features import FeatureSpec

log = logging.getLogger(__name__)


def predict(model_paths: list[str], weights_path: str, rasters: dict[str, str], coarse: str, anchor: str, scale: str,
            outputs: dict[str, str], settings: dict, model_inputs: dict, tile: list[int] | None = None,
            threads: int = 1, api_start: tuple[str, str] | None = None,
            detail: tuple[str, float] | None = None) -> None:
    """`settings`: config predict; `model_inputs`: what the members' inputs mean (checked against each model);
    `anchor`: the coarse field's cubic interpolation at this scale (used where settings anchor is smoothed);
    `tile`: [first row, first col, rows, cols] of the coarse cells to predict (None: all); `threads`: the job's;
    `api_start`: a time chunk's carried antecedent precipitation indices and the day they continue from;
    `detail`: the surface ensemble's tile and the share of the root zone's within-cell detail taken from it
    (config ensemble.rootzone_from_surface)."""
    members = load_members(model_paths, model_inputs, threads)
    table = pd.read_csv(weights_path)
    # the members given: the deep ones, and the forest where it joins the ensemble (config ensemble.forest)
    member_weights = {row.member: float(row.weight) for row in table.itertuples() if row.member in members}
    _predict(members, member_weights, rasters, coarse, anchor, scale, outputs, settings, model_inputs, tile, threads,
             api_start, detail)


def predict_rf(model_path: str, rasters: dict[str, str], coarse: str, anchor: str, scale: str, output: str,
               settings: dict, model_inputs: dict, threads: int = 1, tile: list[int] | None = None,
               api_start: tuple[str, str] | None = None) -> None:
    """The random forest's 30 m map with the members' correction (so it is compared like for like), in a job of its
    own: no TensorFlow, the forest on `threads` cores."""
    members = load_members([model_path], model_inputs, threads)
    _predict(members, {}, rasters, coarse, anchor, scale, {"rf": output}, settings, model_inputs, tile, threads,
             api_start)


def _predict(members, member_weights, rasters, coarse, anchor, scale, outputs, settings, model_inputs, tile, threads,
             api_start, detail=None):
    factor = factor_of(scale, coarse)
    spec = FeatureSpec.from_dict(model_inputs["spec"])
    smoothed = anchor if settings["anchor"] == "smoothed" else None
    log.info("correction %s to the %s anchor%s; tile %s", settings["correction"], settings["anchor"],
             f" ({anchor})" if smoothed else "", tile or "whole region")
    clipped = predict_layer(members, member_weights, spec, rasters, coarse, factor, outputs,
                            block_cells=settings["block_cells"], correction=settings["correction"],
                            valid_range=tuple(settings["valid_range"]), anchor=smoothed, tile=Tile(*tile) if tile else None, threads=threads,
                            api_start=tuple(api_start) if api_start else None, detail=detail)
    if detail:
        log.info("the ensemble takes %.2f of its within-cell detail from %s", detail[1], detail[0])
    for name, count in clipped.items():
        log.info("%s: %d values outside %s clipped", name, count, settings["valid_range"])

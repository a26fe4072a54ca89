"""One function per workflow step: file paths and config in, files out. The Snakemake scripts call these."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from smdown import io, resample
from smdown.config import inputs_of
from smdown.features import FeatureSpec, derive
from smdown.grid import nest_factor
from smdown.samples import bag_samples, build_samples, draw_examples, group_masks, make_split, pool

log = logging.getLogger(__name__)


def setup_logging(path: str | None) -> None:
    """Log to the rule's log file (and stderr), one line per event."""
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(path, mode="w"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        handlers=handlers, force=True)


def factor_of(scale: str, coarse_path: str) -> int | None:
    """Integer factor of a scale name in the coarse cell; None for the coarse grid itself."""
    if scale == "coarse":
        return None
    return nest_factor(io.read_grid(coarse_path).res, float(scale))


def feature_spec(config: dict) -> FeatureSpec:
    from smdown.features import spec_from_config

    inputs = inputs_of(config)
    terrain = resample.terrain_names(config["derived"]["terrain"]) if "dem" in inputs.predictors else []
    return spec_from_config(config, inputs.dynamic, inputs.static + terrain)


# ------------------------------------------------------------------ resample


def terrain(dem: str, outputs: dict[str, str], names: list[str]) -> None:
    layers = resample.terrain_layers(dem, names)
    for name, stack in layers.items():
        io.write_stack(outputs[name], stack)
        log.info("%s: %s range %.3g..%.3g", name, stack.grid.shape, np.nanmin(stack.data), np.nanmax(stack.data))


def resample_one(source: str, coarse: str, output: str, scale: str, static: bool, is_target: bool, max_gap: int) -> None:
    factor = factor_of(scale, coarse)
    missing = resample.resample_variable(source, coarse, factor, static, output, fill=not is_target,
                                         max_gap_days=max_gap)
    grid = io.read_grid(output)
    log.info("%s -> scale %s (factor %s): %s x %d bands, %.1f%% NaN", source, scale, factor, grid.shape,
             io.band_count(output), 100 * missing)


# ------------------------------------------------------------------ samples


def outage_dates(coarse_paths: list[str]) -> tuple[list[str], list[str]]:
    """The coarse dates, and those on which a coarse layer is NaN everywhere (a satellite outage)."""
    dates, outages = None, set()
    for path in coarse_paths:
        stack = io.read_stack(path)
        dates = stack.dates
        empty = ~np.isfinite(stack.data).any(axis=(1, 2))
        outages |= {d for d, e in zip(stack.dates, empty, strict=True) if e}
    return dates, sorted(outages)


def split(coarse_paths: list[str], output: str, config: dict) -> None:
    dates, outages = outage_dates(coarse_paths)
    for day in outages:
        log.warning("coarse input is NaN everywhere on %s (outage): day left out of training", day)
    shape = io.read_grid(coarse_paths[0]).shape
    result = make_split(shape, dates, outages, config["samples"], config["seed"])
    for name in ("train", "val", "test"):
        log.info("%s: %d cells %s, %d days", name, len(result[f"{name}_cells"]), result[f"{name}_cells"],
                 len(result[f"{name}_dates"]))
    _write_json(output, result)


def samples(rasters: dict[str, str], target: str, split_path: str, coarse: str, scale: str, output: str,
            config: dict, seed_offset: int) -> None:
    """Training examples of one layer at one scale.

    target "aggregate": bags of pixels of one coarse cell-day labelled with the coarse value (the
    models learn a fine field whose areal mean is the coarse value), read cell by cell; "cubic" /
    "coarse": each pixel labelled with the resampled coarse field at that scale.
    """
    spec = feature_spec(config)
    settings = config["samples"]
    target_stack = io.read_stack(target)
    split_groups = json.loads(Path(split_path).read_text())
    rng = np.random.default_rng(config["seed"] + seed_offset)
    factor = factor_of(scale, coarse) or 1
    try:
        if settings["target"] == "aggregate":
            result = _bag_samples(spec, rasters, target_stack, split_groups, factor, settings, rng)
        else:
            result = _pixel_samples(spec, rasters, target_stack, split_groups, factor, settings, rng)
    except ValueError as err:
        raise io.InputError(f"{target} at scale {scale}: {err}") from err
    counts = np.bincount(result["split"], minlength=3)
    log.info("scale %s: %d examples in %d bags (train %d, val %d, test %d), %d features", scale,
             len(result["target"]), result["bag"].max() + 1, *counts, len(spec.names))
    with io.atomic_path(output) as tmp:
        np.savez(tmp, **result)


def _bag_samples(spec: FeatureSpec, rasters: dict[str, str], coarse: io.Stack, split_groups: dict, factor: int,
                 settings: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Bags read cell by cell from windows of the scale's rasters (samples.bag_samples)."""
    shape = (coarse.grid.height * factor, coarse.grid.width * factor)

    def read_cell(row: int, col: int, size: int, halo: int) -> dict[str, np.ndarray]:
        return {name: io.read_block(rasters[name], row, col, size, size, halo, shape) for name in spec.rasters}

    masks = group_masks(split_groups, coarse.dates, coarse.grid.shape, 1)
    return bag_samples(spec, read_cell, coarse.data, coarse.dates, masks, factor, settings, rng)


def _pixel_samples(spec: FeatureSpec, rasters: dict[str, str], target: io.Stack, split_groups: dict, factor: int,
                   settings: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Pixels labelled with the resampled coarse field, drawn over the whole region (read at once)."""
    stacks = {name: io.read_stack(rasters[name], static=name in spec.static).data for name in spec.rasters}
    features = derive(spec, stacks, target.dates)
    masks = group_masks(split_groups, target.dates, target.grid.shape, factor)
    drawn = draw_examples(target.data, features, masks, settings["per_scale"], rng)
    return build_samples(spec, features, target.data, drawn, settings["patch"], settings["sequence_days"], masks)


def load_samples(paths: list[str]) -> list[dict]:
    return [dict(np.load(p)) for p in paths]


# ------------------------------------------------------------------ train


def model_settings(config: dict) -> dict:
    """The settings that fix what a model's inputs mean (part of its signature)."""
    s = config["samples"]
    return {"patch": s["patch"], "sequence_days": s["sequence_days"], "target": s["target"],
            "spec": feature_spec(config).to_dict()}


def train(kind: str, sample_paths: list[str], model_out: str, meta_out: str, history_out: str, config: dict,
          layer_seed: int) -> None:
    from smdown import models
    from smdown import train as training

    pooled = pool(load_samples(sample_paths))
    features = [str(f) for f in pooled["features"]]
    settings = model_settings(config)
    seed = config["seed"] + layer_seed
    if kind == "rf":
        model = training.train_rf(pooled, config["rf"], seed, n_jobs=int(os.environ.get("SMDOWN_THREADS", 1)))
        import joblib

        with io.atomic_path(model_out) as tmp:
            joblib.dump(model, tmp)
    else:
        aggregate = config["samples"]["target"] == "aggregate"
        model, history = training.train_deep(kind, pooled, config["models"], seed, aggregate,
                                             feature_spec(config).n_dynamic)
        with io.atomic_path(model_out) as tmp:
            model.save(tmp)
        _write_csv(history_out, history)
        log.info("%s: best val_loss %.4e at epoch %d", kind, history["val_loss"].min(),
                 int(history.loc[history["val_loss"].idxmin(), "epoch"]))
    meta = {"name": kind, "features": features, "signature": models.signature(features, settings), **settings,
            "seed": seed}
    models.save_meta(meta_out, meta)


# ------------------------------------------------------------------ ensemble


def load_members(paths: list[str], config: dict) -> dict:
    from smdown import models

    spec = feature_spec(config)
    expected = models.signature(spec.names, model_settings(config))
    members = {}
    for path in paths:
        member = models.load_member(path, expected)
        members[member.name] = member
    return members


def ensemble(model_paths: list[str], sample_paths: list[str], output: str, config: dict) -> None:
    from smdown import ensemble as ens
    from smdown import train as training

    members = load_members(model_paths, config)
    val = training.subset(pool(load_samples(sample_paths)), 1)
    predictions = {name: m.predict_samples(val) for name, m in members.items()}
    target = val["target"]
    if config["samples"]["target"] == "aggregate":  # skill on the coarse value each bag must reproduce
        predictions = {name: training.bag_means(p, val["bag"]) for name, p in predictions.items()}
        target = training.bag_means(target, val["bag"])
    deep = {name: p for name, p in predictions.items() if name != "rf"}
    w = ens.weights(deep, target, config["ensemble"]["weighting"])
    table = ens.member_table(predictions, target, w)
    log.info("weights (%s): %s", config["ensemble"]["weighting"], w)
    log.info("validation metrics:\n%s", table.to_string(index=False))
    _write_csv(output, table)


# ------------------------------------------------------------------ predict


def predict(model_paths: list[str], weights_path: str, rasters: dict[str, str], coarse: str, scale: str,
            outputs: dict[str, str], config: dict) -> None:
    from smdown.predict import predict_layer

    members = load_members(model_paths, config)
    table = pd.read_csv(weights_path)
    member_weights = {row.member: float(row.weight) for row in table.itertuples() if row.member != "rf"}
    settings = config["predict"]
    factor = factor_of(scale, coarse)
    clipped = predict_layer(members, member_weights, feature_spec(config), rasters, coarse, factor, outputs,
                            settings["block_cells"], settings["correction"], tuple(settings["valid_range"]))
    for name, count in clipped.items():
        log.info("%s: %d values outside %s clipped", name, count, settings["valid_range"])


def copy_baseline(source: str, output: str) -> None:
    with io.atomic_path(output) as tmp:
        shutil.copyfile(source, tmp)


# ------------------------------------------------------------------ helpers


def _write_json(path: str, data: dict) -> None:
    with io.atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1))


def _write_csv(path: str, frame: pd.DataFrame) -> None:
    with io.atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def use_threads(threads: int) -> None:
    """Give a job's TensorFlow and scikit-learn work the threads Snakemake granted it."""
    os.environ["SMDOWN_THREADS"] = str(threads)
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)

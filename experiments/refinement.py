"""How much of what the stations' refinement could give the stations find, measured on finished skill-panel worlds
with stations: `python -m experiments.refinement [--out results/panel] [--worlds untouched]`.

For each world and layer, the ensemble before refinement (``ensemble_raw``) is refined three ways, each exactly as
rule refine maps it (smdown.mapping.refine_steps.refine_map, clipped to predict.valid_range):

- ``run``: the refinement the run fitted (its refinement.json; the ensemble kept where its left-one-station-out
  check refused it);
- ``forced``: the same stations' ridge at the smallest penalty tried (RIDGE_ALPHAS[0]), applied whatever the check
  says;
- ``oracle``: the coefficients of the same predictors' anomalies fitted on the 30 m truth of all pixels and days
  (least squares of truth - ensemble on the anomalies): what these anomalies could give. No run has it.

Each map is scored against the truth on all pixels and days: ubRMSE over the raw ensemble's, within-cell anomaly
r, and the run's share of the oracle's gain, (raw - run) / (raw - oracle). Then the medians per part and layer.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from experiments.panel import DEFAULT_OUT, finished_worlds, predictor_files, skill
from smdown import config as smconfig
from smdown import io
from smdown.mapping import refine as refining
from smdown.mapping.refine_steps import read_refinement, refine_map, station_errors

WAYS = ("raw", "run", "forced", "oracle")


def oracle_beta(ensemble: np.ndarray, truth: np.ndarray, anomalies: dict[str, np.ndarray]) -> list[float]:
    """Least-squares coefficients (with an intercept) of truth - ensemble on the anomalies, over every pixel-day
    where all are finite."""
    target = np.asarray(truth, dtype=np.float64) - ensemble
    ok = np.isfinite(target)
    for values in anomalies.values():
        ok &= np.isfinite(values)
    x = np.stack([values[ok] for values in anomalies.values()], axis=1)
    y = target[ok]
    x, y = x - x.mean(axis=0), y - y.mean()
    return np.linalg.solve(x.T @ x, x.T @ y).tolist()


def _aligned(stack: io.Stack, dates: list[str]) -> np.ndarray:
    """A stack's bands on `dates` (a static one: its one band)."""
    return stack.data[0] if stack.dates is None else stack.data[[stack.dates.index(d) for d in dates]]


def layer_rows(workdir: Path, config: dict, layer: str, scratch: Path) -> list[dict]:
    """One world's layer: a row per way (WAYS) with its beta, ubRMSE, ratio to the raw ensemble's and anomaly r."""
    run = workdir / "results" / config["run"]
    inputs = smconfig.inputs_of(config)
    raw_path = run / "downscaled" / layer / "ensemble_raw.tif"
    coarse, truth_path = workdir / inputs.coarse[layer], workdir / inputs.truth[layer]
    settings = config["refine"]
    files = predictor_files(run, config, layer)
    rasters = {name: str(files[name]) for name in settings["predictors"] if name in files}
    names = list(rasters)
    raw = io.read_stack(raw_path)
    factor = io.nest(raw.grid, io.read_grid(coarse))
    ensemble = raw.data.astype(np.float64)
    truth = _aligned(io.read_stack(truth_path), raw.dates)
    mask = np.isfinite(ensemble)
    anomalies = {name: refining.cell_anomaly(_aligned(io.read_stack(path), raw.dates), factor, mask)
                 for name, path in rasters.items()}
    series, at_stations = station_errors(layer, str(raw_path), rasters, str(coarse),
                                         str(run / "samples" / "split.json"), str(workdir / inputs.stations))
    error, station = (series["observed"] - series["ensemble"]).to_numpy(), series["station"].to_numpy()
    fitted = read_refinement(str(run / "ensemble" / layer / "refinement.json"))
    betas = {"raw": [0.0] * len(names), "run": fitted.beta if fitted.applied else [0.0] * len(names),
             "forced": refining.fitted_beta(at_stations, error, station, refining.RIDGE_ALPHAS[0]),
             "oracle": oracle_beta(ensemble, truth, anomalies)}
    del anomalies
    rows = {}
    for way in WAYS:
        if way == "raw":  # predict's map as it is (already clipped)
            refined = raw.data
        else:
            path = scratch / f"{layer}_{way}.tif"
            refinement = refining.Refinement(predictors=names, beta=list(betas[way]), applied=True)
            refine_map(refinement, str(raw_path), rasters, factor, str(path), tuple(config["predict"]["valid_range"]))
            refined = io.read_stack(path).data
        scores = skill(refined, truth, factor)
        rows[way] = {"layer": layer, "way": way, "applied_by_run": fitted.applied,
                     "beta": " ".join(f"{name} {b:+.3f}" for name, b in zip(names, betas[way], strict=True)),
                     "ubrmse": scores["ubrmse"], "anomaly_r": scores["anomaly_r"]}
    base = rows["raw"]["ubrmse"]
    oracle_gain = base - rows["oracle"]["ubrmse"]
    for row in rows.values():
        row["ratio_raw"] = row["ubrmse"] / base
        row["share_of_oracle_gain"] = (base - row["ubrmse"]) / oracle_gain if oracle_gain > 0 else float("nan")
    return list(rows.values())


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(prog="python -m experiments.refinement", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"the panel's folder (default {DEFAULT_OUT})")
    parser.add_argument("--worlds", default="untouched", help="tune, untouched (default), all or names, comma-separated")
    parser.add_argument("--variant", default="default", help="the worlds' variant folder (default: their own stations)")
    args = parser.parse_args(argv)
    rows = []
    for world, workdir in finished_worlds(args.out, args.worlds, args.variant):
        config = smconfig.validate(yaml.safe_load((workdir / "config.yaml").read_text()))
        if not smconfig.inputs_of(config).stations:
            print(f"{world.name}: its run has no stations; skipped")
            continue
        with tempfile.TemporaryDirectory() as scratch:
            for layer in smconfig.inputs_of(config).layers:
                rows += [{"world": world.name, "part": world.part, **row}
                         for row in layer_rows(workdir, config, layer, Path(scratch))]
    table = pd.DataFrame(rows)
    if table.empty:
        print("no finished world")
        return table
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    medians = table.groupby(["part", "layer", "way"], sort=False)[["ratio_raw", "share_of_oracle_gain"]].median()
    print("\nmedians over the worlds (all pixels and days):")
    print(medians.to_string(float_format=lambda v: f"{v:.3f}"))
    return table


if __name__ == "__main__":
    main()

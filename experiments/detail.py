"""How much of the root zone's within-cell detail to take from the surface ensemble
(`ensemble.rootzone_from_surface`, smdown.mapping.detail), measured on finished skill-panel worlds:
`python -m experiments.detail [--out results/panel] [--worlds tune] [--variant stations_none]`.

For each world, the root zone's ensemble as the run wrote it and the members' own ensemble without any borrowed
detail (the members combined again with the run's weights, as predict combines them: what
`rootzone_from_surface: 0` writes), then that ensemble given each share of the surface ensemble's detail
(borrow_detail, clipped to predict.valid_range, as predict does). Each is scored against the world's 30 m truth on
all pixels and days, coarse cell row by coarse cell row: ubRMSE over cubic's, and the within-cell anomaly r. Then
the medians over the worlds, per share. The `written` row is the run's own map: with the share the run used, it
equals that share's row.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from experiments.panel import DEFAULT_OUT, finished_worlds, read_weights
from smdown import config as smconfig
from smdown import io
from smdown.grid import block_expand, block_mean, nest_factor
from smdown.learning.ensemble import combine
from smdown.mapping.detail import borrow_detail

SHARES = (0.0, 0.25, 0.5, 0.75, 1.0)


class _Score:
    """Pooled sums of the error and of the within-cell anomalies of a method and of the truth."""

    def __init__(self) -> None:
        self.n = self.e = self.ee = 0.0
        self.m = self.t = self.mm = self.tt = self.mt = 0.0

    def add(self, pred: np.ndarray, truth: np.ndarray, factor: int) -> None:
        ok = np.isfinite(pred) & np.isfinite(truth)
        pred, truth = np.where(ok, pred, np.nan).astype(np.float64), np.where(ok, truth, np.nan).astype(np.float64)
        error = (pred - truth)[ok]
        self.n += error.size
        self.e += error.sum()
        self.ee += (error**2).sum()
        a = (pred - block_expand(block_mean(pred, factor), factor))[ok]
        b = (truth - block_expand(block_mean(truth, factor), factor))[ok]
        self.m, self.t, self.mm, self.tt, self.mt = (self.m + a.sum(), self.t + b.sum(), self.mm + (a * a).sum(),
                                                     self.tt + (b * b).sum(), self.mt + (a * b).sum())

    def ubrmse(self) -> float:
        return float(np.sqrt(self.ee / self.n - (self.e / self.n) ** 2))

    def anomaly_r(self) -> float:
        n = self.n
        cov = self.mt / n - self.m * self.t / n**2
        return float(cov / np.sqrt((self.mm / n - (self.m / n) ** 2) * (self.tt / n - (self.t / n) ** 2)))


def score_world(workdir: Path, shares: tuple[float, ...]) -> list[dict]:
    """The root zone of one finished world: rows of share (or `written`), ubRMSE, its ratio to cubic, anomaly r."""
    config = smconfig.validate(yaml.safe_load((workdir / "config.yaml").read_text()))
    run = workdir / "results" / config["run"]
    inputs = smconfig.inputs_of(config)
    truth_path = workdir / inputs.truth["rootzone"]
    factor = nest_factor(io.read_grid(workdir / inputs.coarse["rootzone"]).res, io.read_grid(truth_path).res)
    lo, hi = config["predict"]["valid_range"]
    maps = run / "downscaled"
    weights = read_weights(run / "ensemble" / "rootzone" / "weights.csv")
    members = {m: maps / "rootzone" / f"{m}.tif" for m in weights}
    scores = {key: _Score() for key in ("cubic", "written", *shares)}
    grid = io.read_grid(truth_path)
    for row in range(0, grid.height, factor):
        window = (row, 0, factor, grid.width)
        truth = io.read_window(truth_path, *window)
        fields = {m: io.read_window(path, *window) for m, path in members.items()}
        plain = np.clip(combine(fields, weights)[0], lo, hi)
        surface = io.read_window(maps / "surface" / "ensemble.tif", *window)
        scores["cubic"].add(io.read_window(maps / "rootzone" / "cubic.tif", *window), truth, factor)
        scores["written"].add(io.read_window(maps / "rootzone" / "ensemble.tif", *window), truth, factor)
        for share in shares:
            scores[share].add(np.clip(borrow_detail(plain, surface, factor, share), lo, hi), truth, factor)
    cubic = scores["cubic"].ubrmse()
    return [{"share": key, "ubrmse": s.ubrmse(), "ratio_cubic": s.ubrmse() / cubic, "anomaly_r": s.anomaly_r()}
            for key, s in scores.items() if key != "cubic"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m experiments.detail", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"the panel's folder (default {DEFAULT_OUT})")
    parser.add_argument("--worlds", default="tune", help="tune (default), untouched, all or comma-separated names")
    parser.add_argument("--variant", default="stations_none",
                        help="the worlds' variant folder (default stations_none: no stations, nothing refined)")
    parser.add_argument("--shares", type=float, nargs="+", default=list(SHARES), help="shares to score")
    args = parser.parse_args(argv)
    rows = []
    for world, workdir in finished_worlds(args.out, args.worlds, args.variant):
        for row in score_world(workdir, tuple(args.shares)):
            rows.append({"world": world.name, "part": world.part, **row})
    table = pd.DataFrame(rows)
    if table.empty:
        print("no finished world")
        return
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    medians = table.groupby(["part", "share"], sort=False)[["ratio_cubic", "anomaly_r"]].median()
    print("\nmedians over the worlds (root zone, all pixels and days):")
    print(medians.to_string(float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()

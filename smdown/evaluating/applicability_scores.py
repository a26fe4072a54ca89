"""The error of the maps inside and outside the area of applicability (rule applicability of
workflow/rules/applicability.smk): evaluation/applicability.csv, one row per layer, method and area."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from smdown import io

log = logging.getLogger(__name__)
COLUMNS = ["layer", "method", "area", "rmse", "ubrmse", "bias", "n", "share", "threshold"]


def _scores(errors: np.ndarray) -> dict[str, float]:
    n = len(errors)
    if n == 0:
        return {"rmse": np.nan, "ubrmse": np.nan, "bias": np.nan, "n": 0}
    bias = float(errors.mean())
    rmse = float(np.sqrt(np.mean(errors**2)))
    return {"rmse": rmse, "ubrmse": float(np.sqrt(max(rmse**2 - bias**2, 0.0))), "bias": bias, "n": n}


def applicability(layers: Sequence[str], truths: Sequence[str], aoa_maps: Sequence[str], metas: Sequence[str],
                  maps: Sequence[str], map_layers: Sequence[str], methods: Sequence[str], coarse: str, split: str,
                  output: str) -> None:
    """Step of rule applicability: RMSE, ubRMSE (Entekhabi et al. 2010), bias and count of each map against the
    truth inside and outside the area of applicability, on the test cells x test days of the split, one cell's
    series at a time. `layers`, `truths`, `aoa_maps`, `metas`: per layer with a truth; `maps`, `map_layers`,
    `methods`: the scored maps."""
    import pandas as pd

    split_ = json.loads(Path(split).read_text())
    coarse_grid = io.read_grid(coarse)
    rows = []
    for layer, truth, aoa_path, meta in zip(layers, truths, aoa_maps, metas, strict=True):
        threshold = float(json.loads(Path(meta).read_text())["threshold"])
        factor = io.nest(io.read_grid(aoa_path), coarse_grid)
        dates = [d for d in io.read_dates(aoa_path) if d in set(split_["test_dates"])]
        layer_maps = {m: p for p, lay, m in zip(maps, map_layers, methods, strict=True) if lay == layer}
        errors: dict[tuple[str, bool], list[np.ndarray]] = {}
        for cr, cc in split_["test_cells"]:
            window = (cr * factor, cc * factor, factor, factor)
            reference = io.read_dated(truth, *window, dates)
            inside = io.read_dated(aoa_path, *window, dates) <= threshold  # a NaN DI is not inside
            for method, path in layer_maps.items():
                error = io.read_dated(path, *window, dates) - reference
                ok = np.isfinite(error)
                errors.setdefault((method, True), []).append(error[ok & inside])
                errors.setdefault((method, False), []).append(error[ok & ~inside])
        for method in layer_maps:
            counts = {area: sum(len(e) for e in errors.get((method, area), [])) for area in (True, False)}
            for area in (True, False):
                e = np.concatenate(errors.get((method, area), [np.empty(0)]))
                rows.append({"layer": layer, "method": method, "area": "inside" if area else "outside",
                             **_scores(e), "share": counts[area] / max(sum(counts.values()), 1),
                             "threshold": threshold})
    table = pd.DataFrame(rows, columns=COLUMNS)
    io.write_csv(output, table)
    for row in table.itertuples():
        log.info("%s %s %s: rmse %.4f ubrmse %.4f n %d (%.1f %%)", row.layer, row.method, row.area, row.rmse,
                 row.ubrmse, row.n, 100 * row.share)

"""The area of applicability's steps (rules aoa_reference, aoa and applicability of workflow/rules/applicability.smk).

aoa_reference: a layer's reference of training examples (smdown.mapping.applicability) from its samples and the
sensitivity analysis's importance, written beside the ensemble's weights (ensemble/<layer>/aoa.npz and aoa.json, the
threshold in the JSON), so a run applying the trained run (config models.from) reuses it. aoa: the dissimilarity
index of one tile's pixel-days, its predictors read and its features derived as predict derives them. For
the error of the maps inside and outside the area (smdown.evaluating.applicability_scores).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from smdown import io
from smdown.grid import Tile, cell_blocks, nest_factor
from smdown.mapping import applicability as aoa
from smdown.preparing.features import FeatureSpec, cube, derive
from smdown.preparing.samples import load as load_samples

log = logging.getLogger(__name__)


def mean_importance(path: str) -> dict[str, float]:
    """Each feature's permutation importance averaged over the members (sensitivity/<layer>/importance.csv)."""
    import pandas as pd

    table = pd.read_csv(path)
    if not {"feature", "importance"} <= set(table.columns):
        raise io.InputError(f"{path}: expected the columns feature and importance, found {list(table.columns)}")
    return table.groupby("feature")["importance"].mean().to_dict()


def reference(sample_paths: Sequence[str], importance: str | None, outputs: Mapping[str, str], settings: dict,
              seed: int) -> None:
    """Step of rule aoa_reference: the layer's training examples (split train), weighted by `importance` (a
    sensitivity table; None: equal weights), as a reference of at most settings examples. `settings`: config aoa."""
    samples = load_samples(list(sample_paths))
    features = [str(f) for f in samples["features"]]
    train = samples["split"] == 0
    x = samples["pixel"][train].astype(np.float64)
    if "cell_row" in samples:  # bags: the coarse cell is the spatial block
        groups = samples["cell_row"][train].astype(np.int64) * 1_000_000 + samples["cell_col"][train]
    else:  # pixels: whole days
        groups = samples["t"][train]
    weights = aoa.importance_weights(features, mean_importance(importance) if importance else None)
    ref = aoa.build_reference(x, features, groups, weights, settings["folds"], settings["examples"], seed)
    flagged = float(np.mean(ref.training_di > ref.threshold))
    meta = {**ref.to_meta(), "weighting": "importance" if importance else "equal",
            "training_di": {"q25": float(np.percentile(ref.training_di, 25)),
                            "q75": float(np.percentile(ref.training_di, 75)), "outside": flagged},
            "ranges": aoa.quantiles(samples["pixel"], features)}
    with io.atomic_path(outputs["points"]) as tmp, open(tmp, "wb") as f:
        np.savez(f, points=ref.points.astype(np.float32))
    io.write_json(outputs["meta"], meta)
    top = sorted(zip(features, weights, strict=True), key=lambda p: -p[1])[:3]
    log.info("%d training examples in %d blocks; weights %s; mean distance %.4g; threshold DI %.4g (%.1f %% of the "
             "training examples' cross-validation DI above it)", len(ref.points), len(np.unique(groups)),
             ", ".join(f"{n} {w:.3f}" for n, w in top), ref.mean_distance, ref.threshold, 100 * flagged)


def read_reference(points: str, meta: str) -> aoa.Reference:
    """A reference written by `reference`."""
    m = json.loads(Path(meta).read_text())
    with np.load(points) as data:
        pts = data["points"].astype(np.float64)
    return aoa.Reference(m["features"], np.array(m["mean"]), np.array(m["scale"]), np.array(m["weights"]), pts,
                         float(m["mean_distance"]), float(m["threshold"]), np.empty(0))


def aoa_map(points: str, meta: str, rasters: Mapping[str, str], coarse: str, scale: str, output: str,
            model_inputs: dict, tile: list[int], block_cells: int, threads: int = 1,
            api_start: tuple[str, str] | None = None) -> None:
    """Step of rule aoa: the DI of every pixel-day of one tile (NaN where a predictor is), block by block of
    `block_cells` coarse cells, its features derived from the predictors at `scale` as predict derives them (a time
    chunk's antecedent precipitation indices continuing from `api_start`, as predict's)."""
    from scipy.spatial import cKDTree

    spec = FeatureSpec.from_dict(model_inputs["spec"])
    ref = read_reference(points, meta)
    if ref.features != spec.names:
        raise io.InputError(f"{meta}: area-of-applicability reference of features {ref.features}, but the models "
                            f"of this run take {spec.names}")
    coarse_grid, dates = io.read_grid(coarse), io.read_dates(coarse)
    factor = nest_factor(coarse_grid.res, float(scale))
    part = Tile(*tile)
    fine_grid = io.read_grid(rasters[spec.rasters[0]])
    tree = cKDTree(ref.points)
    outside = total = 0
    with io.open_writer(output, fine_grid.window(*part.fine(factor)), dates) as dst:
        for r0, c0, cell_rows, cell_cols in cell_blocks((part.rows, part.cols), block_cells):
            rows, cols = cell_rows * factor, cell_cols * factor
            row, col = (part.row + r0) * factor, (part.col + c0) * factor
            block = {name: io.read_window(rasters[name], row, col, rows, cols) for name in spec.rasters}
            carried = None if not api_start else (
                dates.index(api_start[1]), io.read_window(api_start[0], row, col, rows, cols))
            x = cube(spec, derive(spec, block, dates, carried), len(dates)).reshape(-1, len(spec.names))
            di = aoa.dissimilarity(ref, x, tree, threads).reshape(len(dates), rows, cols)
            io.write_window(dst, di, r0 * factor, c0 * factor)
            outside += int(np.count_nonzero(di > ref.threshold))
            total += int(np.count_nonzero(np.isfinite(di)))
    log.info("tile %s: %d of %d pixel-days (%.2f %%) outside the area of applicability (DI > %.4g)", tile, outside,
             total, 100 * outside / max(total, 1), ref.threshold)

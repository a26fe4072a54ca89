"""The evaluating stage's steps, one function per rule of workflow/rules/evaluate.smk (and the sensitivity figure):
the cubic baselines, the scores against truth, stations and the coarse input (tile by tile, then merged), and the
figures. The science lives in smdown.evaluating.scores, metrics and plots; these functions pick the inputs, call them
and log what they did.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from smdown import io

log = logging.getLogger(__name__)


# ------------------------------------------------------------ evaluate
PathLike = str | Path


# ------------------------------------------------------------------ baselines


def cubic_baselines(source: str, coarse: str, outputs: dict[str, str], correction: str, block_cells: int,
                    anchor: str = "coarse", tile: list[int] | None = None) -> None:
    """The cubic baseline, raw (`cubic`: the coarse field warped cubically onto the prediction grid, the resample
    rule's output) and with the members' coarse correction (`cubic_corrected`, config predict.correction and
    predict.anchor), so every method is compared like for like, over the coarse cells of `tile` ([first row, first
    col, rows, cols]; None: all). Written block by block of `block_cells` coarse cells. With the smoothed anchor
    (the cubic field's own cell means) the corrected field is the raw one."""
    from smdown.grid import Tile, cell_blocks
    from smdown.mapping import correction as corrections

    grid, dates = io.read_grid(source), io.read_dates(source)
    cells = io.read_stack(coarse).data
    factor = grid.height // cells.shape[1]
    tile = Tile(*tile) if tile else Tile(0, 0, *cells.shape[1:])
    if anchor == "smoothed":
        cells = corrections.anchor_means(source, cells, factor, tile)
    else:
        cells = cells[:, tile.row : tile.row + tile.rows, tile.col : tile.col + tile.cols]
    windows = list(cell_blocks(cells.shape[1:], block_cells))

    def read(r, c, h, w):
        return io.read_window(source, (tile.row + r) * factor, (tile.col + c) * factor, h * factor, w * factor)

    nodes = None
    if correction == "smooth":  # exact block-wise: the residual of the whole tile first (one value per cell)
        residual = np.full(cells.shape, np.nan)
        for r, c, h, w in windows:
            residual[:, r : r + h, c : c + w] = corrections.cell_residual(read(r, c, h, w), cells[:, r : r + h, c : c + w],
                                                                          factor)
        nodes = corrections.smooth_nodes(residual, factor)
    tile_grid = grid.window(*tile.fine(factor))
    with io.open_writer(outputs["cubic"], tile_grid, dates) as raw, \
            io.open_writer(outputs["cubic_corrected"], tile_grid, dates) as dst:
        for r, c, h, w in windows:
            values = read(r, c, h, w)
            io.write_window(raw, values, r * factor, c * factor)
            kwargs = {"nodes": nodes, "offset": (r, c)} if nodes is not None else {}
            fixed = corrections.correct(correction, values, cells[:, r : r + h, c : c + w], factor, **kwargs)
            io.write_window(dst, fixed, r * factor, c * factor)
    log.info("cubic baselines of tile %s: %s raw and with the %s correction, %d blocks", tile, source, correction,
             len(windows))


# ------------------------------------------------------------------ evaluate


def evaluate_tile(downscaled: Sequence[PathLike], coarse: PathLike, truth: PathLike | None, split_path: PathLike,
                  tile: list[int], output: PathLike, seed: int, layer: str) -> None:
    """The coarse check of a layer's maps (``downscaled/<layer>/<method>.tif``) and the seams of those and of the
    truth over one tile of coarse cells ([first row, first col, rows, cols]), as JSON for rule evaluate, which
    groups the tiles by the ``layer`` they record."""
    from smdown.evaluating.scores import check_tile, seam_dates_of
    from smdown.stations import read_split

    paths = {Path(p).stem: p for p in downscaled}
    seam_files = {**paths, "truth": truth} if truth else dict(paths)
    check = check_tile(paths, coarse, seam_files, seam_dates_of(read_split(split_path), coarse), tile, seed=seed)
    check.layer = layer
    check.write(output)
    log.info("tile %s: coarse check of %s, seams of %s -> %s", check.tile, list(paths), list(seam_files), output)


def tile_checks_by_layer(tiles: Sequence[PathLike], layers: Sequence[str]) -> dict[str, list[PathLike]]:
    """The files of rule evaluate_tile grouped by the layer each check records (an error names a check of a layer
    the run does not hold); they stay files, so a merge error names the file too."""
    from smdown.evaluating.scores import TileCheck

    checks: dict[str, list[PathLike]] = {}
    for path in tiles:
        layer = TileCheck.read(path).layer
        if layer not in layers:
            raise io.InputError(f"{path}: a tile check of layer {layer!r}, not one of this run's {list(layers)}")
        checks.setdefault(layer, []).append(path)
    return checks


def evaluate(
    downscaled: Sequence[PathLike],
    coarse: Mapping[str, PathLike],
    truth: Mapping[str, PathLike] | None,
    stations: PathLike | None,
    split_path: PathLike,
    outputs: Mapping[str, PathLike],
    seed: int,
    tiles: Sequence[PathLike] = (),
) -> pd.DataFrame:
    """metrics.csv (with bootstrap intervals), pairs.csv, station_series.csv, seams.csv, uncertainty.csv,
    reliability.csv and differences.csv of a run (``outputs`` under those names without the extension).

    ``downscaled``: the run's ``downscaled/<layer>/<method>.tif`` files, or ``.vrt`` (all in one ``downscaled``
    folder, of one kind);
    ``tiles``: the tile checks of rule evaluate_tile (``evaluation/tiles/<layer>/<tile>.json``), whose coarse check
    and seams are merged here (without them, both are computed here over the whole region).
    """
    from smdown.evaluating.scores import RUN_TABLES, Scoring, evaluate_run

    folders = {Path(p).parent.parent for p in downscaled}
    if len(folders) != 1:
        raise ValueError(f"downscaled files must share one downscaled/<layer>/ folder, got {sorted(folders)}")
    suffixes = {Path(p).suffix for p in downscaled}
    if len(suffixes) != 1:
        raise ValueError(f"downscaled files must all be GeoTIFFs or all VRTs, got {sorted(suffixes)}")
    checks = tile_checks_by_layer(tiles, list(coarse))
    table = evaluate_run(folders.pop(), coarse, truth or None, stations or None, split_path,
                         outputs={name: outputs[name] for name in RUN_TABLES}, scoring=Scoring(seed=seed),
                         tile_checks=checks or None, suffix=suffixes.pop())
    log.info("metrics:\n%s", table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return table


# ------------------------------------------------------------------ figures


def map_dates(split_path: PathLike, coarse_path: PathLike, count: int) -> list[str]:
    """``count`` test dates spread evenly over the test period, skipping days the coarse input lacks."""
    split = json.loads(Path(split_path).read_text())
    coarse = io.read_stack(coarse_path)
    observed = {d for d, ok in zip(coarse.dates, np.isfinite(coarse.data).any(axis=(1, 2)), strict=True) if ok}
    candidates = [str(d)[:10] for d in split.get("test_dates", [])]
    candidates = [d for d in candidates if d in observed] or sorted(observed)
    if not candidates:
        return []
    picks = np.unique(np.linspace(0, len(candidates) - 1, min(count, len(candidates))).round().astype(int))
    return [candidates[i] for i in picks]


def maps_figure(
    layer: str,
    ensemble: PathLike,
    uncertainty: PathLike,
    coarse: PathLike,
    truth: PathLike | None,
    split_path: PathLike,
    series_path: PathLike,
    output: PathLike,
    map_days: int,
) -> None:
    """Maps of ``map_days`` test days: coarse input, ensemble, its uncertainty and (when given) truth, above the
    time series of the station with the most observations (station_series.csv of evaluate), when there is one."""
    from smdown.evaluating import plots
    from smdown.evaluating.scores import map_panels

    dates = map_dates(split_path, coarse, map_days)
    files = {"ensemble": ensemble, "uncertainty": uncertainty}
    if truth:
        files["truth"] = truth
    series = _read_csv(series_path)
    if len(series):
        series = series[series["layer"] == layer]
    plots.plot_maps(map_panels(files, coarse, dates), output, title=f"{layer}: test days", series=series)
    log.info("%s: maps of %s (%s)%s -> %s", layer, dates, ", ".join(files),
             " and a station's series" if len(series) else "", output)


def scatter_figure(pairs_path: PathLike, layer: str, reference: str, output: PathLike) -> None:
    """Predicted against reference of every method for one layer and reference (pairs.csv of evaluate)."""
    from smdown.evaluating import plots

    pairs = _read_csv(pairs_path)
    if len(pairs):
        pairs = pairs[(pairs["layer"] == layer) & (pairs["reference"] == reference)]
    if pairs.empty:
        log.warning("%s: no pairs against %s (see the evaluation log)", layer, reference)
    plots.plot_scatter(pairs, output, reference=reference, title=f"{layer} vs {reference}")
    log.info("%s: scatter vs %s, %d pairs -> %s", layer, reference, len(pairs), output)


def station_figure(series_path: PathLike, layer: str, output: PathLike) -> None:
    """Station series of one layer (station_series.csv of evaluate)."""
    from smdown.evaluating import plots

    series = _read_csv(series_path)
    if len(series):
        series = series[series["layer"] == layer]
    if series.empty:
        log.warning("%s: no station overlaps the run (see the evaluation log)", layer)
    plots.plot_station_series(series, output, title=f"{layer} at stations")
    log.info("%s: %d station(s) -> %s", layer, series["station"].nunique() if len(series) else 0, output)


def training_figure(history_paths: Sequence[PathLike], layer: str, output: PathLike) -> None:
    """Training and validation loss of the deep members of one layer (models/<layer>/<model>_history.csv)."""
    from smdown.evaluating import plots

    histories = {Path(p).name.removesuffix("_history.csv"): pd.read_csv(p) for p in history_paths}
    plots.plot_training_curves(histories, output, title=f"{layer}: training")
    log.info("%s: training curves of %s -> %s", layer, list(histories), output)


def reliability_figure(reliability_path: PathLike, uncertainty_path: PathLike, output: PathLike) -> None:
    """Reliability diagram of the uncertainty: observed RMSE per bin of predicted std, and coverage."""
    from smdown.evaluating import plots

    plots.plot_reliability(_read_csv(reliability_path), _read_csv(uncertainty_path), output,
                           title="is the uncertainty what it says?")
    log.info("reliability diagram -> %s", output)


def metric_figure(metrics_path: PathLike, output: PathLike) -> None:
    """Metric bars of every method against every reference, a colour per layer."""
    from smdown.evaluating import plots

    metrics = pd.read_csv(metrics_path)
    plots.plot_metric_bars(metrics, output, title="skill by method and reference")
    log.info("metric bars of %d rows -> %s", len(metrics), output)


def sensitivity_figure(importance_path: PathLike, response_path: PathLike, layer: str, output: PathLike) -> None:
    """The sensitivity figure of a layer from the sensitivity step's tables (importance.csv, response.csv)."""
    from smdown.evaluating import plots

    plots.plot_sensitivity(pd.read_csv(importance_path), pd.read_csv(response_path), output,
                           title=f"{layer}: sensitivity")


def _read_csv(path: PathLike) -> pd.DataFrame:
    """A CSV that may be empty (no header at all) as a possibly empty frame."""
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()

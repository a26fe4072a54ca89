"""Workflow steps after prediction (DESIGN steps 7-9): evaluation, figures and sensitivity.

One function per rule, file paths and settings in, files out; the Snakemake scripts call these.
The science lives in ``smdown.evaluate``, ``smdown.sensitivity`` and ``smdown.plots``; this module
only picks the inputs, calls them and logs what it did.
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

PathLike = str | Path
#: the order in which sensitivity treats (and plots) the models of a layer
SENSITIVITY_ORDER = ("dnn", "cnn", "lstm", "rf")


# ------------------------------------------------------------------ evaluate


def evaluate(
    downscaled: Sequence[PathLike],
    coarse: Mapping[str, PathLike],
    truth: Mapping[str, PathLike] | None,
    stations: PathLike | None,
    split_path: PathLike,
    outputs: Mapping[str, PathLike],
    seed: int,
) -> pd.DataFrame:
    """metrics.csv, pairs.csv and station_series.csv of a run (``outputs``: metrics, pairs, series).

    ``downscaled``: the run's ``downscaled/<layer>/<method>.tif`` files (all in one ``downscaled`` folder).
    """
    from smdown.evaluate import evaluate_run

    folders = {Path(p).parent.parent for p in downscaled}
    if len(folders) != 1:
        raise ValueError(f"downscaled files must share one downscaled/<layer>/ folder, got {sorted(folders)}")
    table = evaluate_run(folders.pop(), coarse, truth or None, stations or None, split_path,
                         out=outputs["metrics"], pairs_out=outputs["pairs"], series_out=outputs["series"], seed=seed)
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
    ensemble_std: PathLike,
    coarse: PathLike,
    truth: PathLike | None,
    split_path: PathLike,
    output: PathLike,
    map_days: int,
) -> None:
    """Maps of ``map_days`` test days: coarse input, ensemble, spread and (when given) truth, one colour scale."""
    from smdown import plots
    from smdown.evaluate import map_panels

    dates = map_dates(split_path, coarse, map_days)
    files = {"ensemble": ensemble, "ensemble_std": ensemble_std}
    if truth:
        files["truth"] = truth
    plots.plot_maps(map_panels(files, coarse, dates), output, title=f"{layer}: test days")
    log.info("%s: maps of %s (%s) -> %s", layer, dates, ", ".join(files), output)


def scatter_figure(pairs_path: PathLike, layer: str, reference: str, output: PathLike) -> None:
    """Predicted against reference of every method for one layer and reference (pairs.csv of evaluate)."""
    from smdown import plots

    pairs = _read_csv(pairs_path)
    if len(pairs):
        pairs = pairs[(pairs["layer"] == layer) & (pairs["reference"] == reference)]
    if pairs.empty:
        log.warning("%s: no pairs against %s (see the evaluation log)", layer, reference)
    plots.plot_scatter(pairs, output, reference=reference, title=f"{layer} vs {reference}")
    log.info("%s: scatter vs %s, %d pairs -> %s", layer, reference, len(pairs), output)


def station_figure(series_path: PathLike, layer: str, output: PathLike) -> None:
    """Station series of one layer (station_series.csv of evaluate)."""
    from smdown import plots

    series = _read_csv(series_path)
    if len(series):
        series = series[series["layer"] == layer]
    if series.empty:
        log.warning("%s: no station overlaps the run (see the evaluation log)", layer)
    plots.plot_station_series(series, output, title=f"{layer} at stations")
    log.info("%s: %d station(s) -> %s", layer, series["station"].nunique() if len(series) else 0, output)


def training_figure(history_paths: Sequence[PathLike], layer: str, output: PathLike) -> None:
    """Training and validation loss of the deep members of one layer (models/<layer>/<model>_history.csv)."""
    from smdown import plots

    histories = {Path(p).name.removesuffix("_history.csv"): pd.read_csv(p) for p in history_paths}
    plots.plot_training_curves(histories, output, title=f"{layer}: training")
    log.info("%s: training curves of %s -> %s", layer, list(histories), output)


def metric_figure(metrics_path: PathLike, output: PathLike) -> None:
    """Metric bars of every method against every reference, a colour per layer."""
    from smdown import plots

    metrics = pd.read_csv(metrics_path)
    plots.plot_metric_bars(metrics, output, title="skill by method and reference")
    log.info("metric bars of %d rows -> %s", len(metrics), output)


# ------------------------------------------------------------------ sensitivity


def validation_subset(pooled: dict, count: int, seed: int, by_bag: bool = False) -> dict[str, np.ndarray]:
    """Up to ``count`` validation examples (split code 1) drawn without replacement, seeded, in sample order.

    ``by_bag``: draw whole bags (samples target "aggregate", key ``bag``) until ``count`` examples (at
    least one bag), so each bag's mean can still be scored against its coarse value.
    """
    from smdown.train import subset

    val = subset(pooled, 1)
    total = len(val["target"])
    if total == 0:
        raise ValueError("no validation example in the samples: sensitivity needs split code 1")
    rng = np.random.default_rng(seed)
    if by_bag:
        bags = rng.permutation(np.unique(val["bag"]))
        sizes = np.array([np.count_nonzero(val["bag"] == b) for b in bags])
        chosen = bags[: max(1, int(np.searchsorted(np.cumsum(sizes), count, side="right")))]
        idx = np.flatnonzero(np.isin(val["bag"], chosen))
    else:
        idx = np.sort(rng.choice(total, size=min(count, total), replace=False))
    return {key: (value[idx] if key != "features" else value) for key, value in val.items()}


def bag_mean(values: np.ndarray, bag: np.ndarray) -> np.ndarray:
    """Each example's value replaced by the mean over its bag (same length as ``values``)."""
    _, index = np.unique(bag, return_inverse=True)
    values = np.asarray(values, dtype=np.float64).reshape(len(bag))
    return (np.bincount(index, weights=values) / np.bincount(index))[index]


def sensitivity_tables(
    members: Mapping[str, object],
    samples: dict[str, np.ndarray],
    settings: Mapping[str, int],
    seed: int,
    bags: np.ndarray | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Permutation importance and response curves of each member on the given examples.

    ``members``: name -> object with ``predict_samples({form: X})`` (``smdown.models.Member``), each
    fed in its own input form (``models.INPUT_FORM``: pixel vectors, patches or sequences; the LSTM is
    scored on its last step). ``settings``: repeats and points (config ``sensitivity``). ``bags``
    (samples target "aggregate"): importance scores each bag's mean prediction against its label, as
    the models were trained; response curves stay per pixel. Returns (importance, response) with a
    ``model`` column first.
    """
    from smdown.models import INPUT_FORM
    from smdown.sensitivity import permutation_importance, response_curves

    features = [str(f) for f in samples["features"]]
    y = samples["target"]
    importance, response = [], []
    order = [m for m in SENSITIVITY_ORDER if m in members] + [m for m in members if m not in SENSITIVITY_ORDER]
    for name in order:
        member = members[name]
        form = INPUT_FORM[name]
        X = samples[form]

        def predict(batch, member=member, form=form):
            return member.predict_samples({form: batch})

        def scored(batch, predict=predict):
            return predict(batch) if bags is None else bag_mean(predict(batch), bags)

        imp = permutation_importance(scored, X, y, features, n_repeats=settings["repeats"], seed=seed)
        curves = response_curves(predict, X, features, n_points=settings["points"], seed=seed)
        importance.append(imp.assign(n=len(X)).assign(model=name))
        response.append(curves.assign(model=name))
        top = ", ".join(f"{r.feature} {r.importance:.4f}" for r in imp.head(3).itertuples())
        log.info("%s (%s, %s): baseline RMSE %.4f on %d examples; top: %s", name, form, X.shape,
                 imp["baseline_rmse"].iloc[0], len(X), top)
    imp_df = pd.concat(importance, ignore_index=True) if importance else pd.DataFrame()
    resp_df = pd.concat(response, ignore_index=True) if response else pd.DataFrame()
    return _model_first(imp_df), _model_first(resp_df)


def sensitivity(
    layer: str,
    model_paths: Sequence[PathLike],
    sample_paths: Sequence[PathLike],
    outputs: Mapping[str, PathLike],
    config: dict,
) -> None:
    """importance.csv, response.csv and sensitivity.png of one layer (``outputs``: importance, response, figure)."""
    from smdown import plots
    from smdown.samples import pool
    from smdown.steps import load_members, load_samples

    settings = config["sensitivity"]
    members = load_members([str(p) for p in model_paths], config)
    aggregate = config["samples"]["target"] == "aggregate"
    samples = validation_subset(pool(load_samples([str(p) for p in sample_paths])), settings["samples"],
                                config["seed"], by_bag=aggregate)
    log.info("%s: %d validation examples%s, %d features, models %s", layer, len(samples["target"]),
             f" in {len(np.unique(samples['bag']))} bags" if aggregate else "", len(samples["features"]),
             sorted(members))
    bags = samples["bag"] if aggregate else None
    importance, response = sensitivity_tables(members, samples, settings, config["seed"], bags)
    _write_csv(outputs["importance"], importance)
    _write_csv(outputs["response"], response)
    plots.plot_sensitivity(importance, response, outputs["figure"], title=f"{layer}: sensitivity")


# ------------------------------------------------------------------ helpers


def _model_first(frame: pd.DataFrame) -> pd.DataFrame:
    if "model" not in frame:
        return frame
    return frame[["model"] + [c for c in frame.columns if c != "model"]]


def _read_csv(path: PathLike) -> pd.DataFrame:
    """A CSV that may be empty (no header at all) as a possibly empty frame."""
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def _write_csv(path: PathLike, frame: pd.DataFrame) -> None:
    with io.atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)

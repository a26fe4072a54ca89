"""Figures of a run (matplotlib, Agg backend, compact PNGs). Each function takes arrays or
DataFrames and an output path, writes the PNG (atomically) and returns the path."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402

from smdown import io  # noqa: E402
from smdown.evaluating.metrics import Z90, Accumulator  # noqa: E402

PathLike = str | os.PathLike
METHOD_ORDER = ("dnn", "cnn", "lstm", "ensemble", "rf", "cubic")
PANEL_TITLES = {"coarse": "coarse input", "ensemble": "ensemble (30 m)", "uncertainty": "uncertainty (90 %)",
                "ensemble_std": "members' spread", "truth": "truth (30 m)"}
SPREAD_PANELS = ("uncertainty", "ensemble_std")  # drawn from 0 on a scale of their own
SPREAD_LABELS = {"uncertainty": "90 % half-width (m³/m³)", "ensemble_std": "spread (m³/m³)"}

SM_LABEL = "soil moisture (m³/m³)"
DPI = 110


def _save(fig, path: PathLike) -> Path:
    path = Path(path)
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def _ordered(names) -> list[str]:
    names = list(dict.fromkeys(names))
    return [m for m in METHOD_ORDER if m in names] + [m for m in names if m not in METHOD_ORDER]


def _range(arrays, q=(2, 98)) -> tuple[float, float]:
    values = np.concatenate([np.asarray(a, dtype=float).ravel() for a in arrays]) if arrays else np.array([])
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(values, q)
    return (float(lo), float(hi)) if hi > lo else (float(lo) - 1e-6, float(hi) + 1e-6)


def plot_maps(panels: Mapping[str, Mapping[str, np.ndarray]], path: PathLike, title: str = "",
              series: pd.DataFrame | None = None) -> Path:
    """The map figure (see ``maps_figure``), written to ``path``."""
    return _save(maps_figure(panels, title, series), path)


def maps_figure(panels: Mapping[str, Mapping[str, np.ndarray]], title: str = "",
                series: pd.DataFrame | None = None):
    """Maps for chosen days side by side, one row per date, columns coarse, ensemble, uncertainty, truth, each
    column with its own colour bar beneath it; below them, when ``series`` has a station, its time series.

    ``panels`` is {date: {name: 2-D array}} (as ``smdown.evaluating.scores.map_panels`` returns); the coarse array may be at
    the coarse resolution, as all panels are drawn over the same extent. The soil-moisture columns share one
    range (2-98 % over all of them) so they compare by eye; ``uncertainty`` (a standard deviation) is drawn as the
    half-width of its 90 % interval and ``ensemble_std`` as it is, from 0. ``series`` is station_series.csv of
    one layer; the station with the most observations is drawn (see ``station_panel``). Returns the figure.
    """
    dates = list(panels)
    names = list(dict.fromkeys(k for d in dates for k in panels[d]))
    order = [k for k in ("coarse", "ensemble", "uncertainty", "ensemble_std", "truth") if k in names]
    order += [k for k in names if k not in order]
    shown = {k: {d: Z90 * panels[d][k] if k == "uncertainty" else panels[d][k] for d in dates if k in panels[d]}
             for k in order}
    sm_range = _range([a for k in order if k not in SPREAD_PANELS for a in shown[k].values()])
    station = station_panel(series) if series is not None else None
    nrow, ncol = max(1, len(dates)), max(1, len(order))
    heights = [1.0] * nrow + [0.08] + ([0.35, 1.0] if station is not None else [])  # maps, bars, gap, station
    fig = plt.figure(figsize=(2.5 * ncol + 0.4, 2.4 * nrow + 0.9 + (3.0 if station is not None else 0)))
    grid = fig.add_gridspec(len(heights), ncol, height_ratios=heights, hspace=0.25, wspace=0.08)
    for j, key in enumerate(order):
        cmap, (vmin, vmax), label = ("magma", (0.0, _range(list(shown[key].values()))[1]), SPREAD_LABELS[key]) \
            if key in SPREAD_PANELS else ("YlGnBu", sm_range, SM_LABEL)
        image = None
        for i, date in enumerate(dates):
            ax = fig.add_subplot(grid[i, j])
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(PANEL_TITLES.get(key, key), fontsize=9)
            if j == 0:
                ax.set_ylabel(date, fontsize=9)
            if key not in panels[date]:
                ax.set_axis_off()
                continue
            ref = panels[date].get("coarse", panels[date][key])
            image = ax.imshow(shown[key][date], cmap=cmap, vmin=vmin, vmax=vmax,
                              extent=(0, ref.shape[1], ref.shape[0], 0), interpolation="nearest")
        if image is not None:
            bar = fig.colorbar(image, cax=fig.add_subplot(grid[nrow, j]), orientation="horizontal")
            bar.set_label(label, fontsize=8)
            bar.ax.tick_params(labelsize=7)
            bar.ax.xaxis.set_major_locator(plt.MaxNLocator(4))
    if station is not None:
        _draw_station(fig.add_subplot(grid[nrow + 2, :]), *station, marks=dates)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def station_panel(series: pd.DataFrame) -> tuple[str, pd.DataFrame] | None:
    """The station of ``series`` (station_series.csv of one layer) with the most observations (ties: the first
    name), and its rows by date; None without an observation."""
    observed = series.dropna(subset=["observed"]) if len(series) else series
    if observed.empty:
        return None
    counts = observed.groupby("station").size()
    name = str(counts[counts == counts.max()].sort_index().index[0])
    return name, series[series["station"] == name].sort_values("date")


def _draw_station(ax, name: str, rows: pd.DataFrame, marks: Sequence[str] = ()) -> None:
    """The map figure's station panel: its series (``_station_lines``), the mapped days marked."""
    _station_lines(ax, rows, f"station {name}")
    for date in marks:
        ax.axvline(pd.Timestamp(date), color="0.3", lw=0.6, ls=":")
    ax.set_ylabel(SM_LABEL, fontsize=8)
    ax.legend(fontsize=7, ncol=4, loc="upper left", framealpha=0.8)
    ax.set_title(f"station {name} (dotted: the days mapped above)", fontsize=9, loc="left")


def _station_lines(ax, rows: pd.DataFrame, label: str, spread: bool = False) -> None:
    """One station's series over time: coarse input, ensemble with the 90 % interval of its uncertainty (and, with
    ``spread``, ± the members' spread) and the observations labelled ``label``; a concise date axis."""
    t = pd.to_datetime(rows["date"])
    if "coarse" in rows:
        ax.step(t, rows["coarse"], where="mid", color="0.5", lw=1, label="coarse input")
    if "ensemble" in rows:
        ax.plot(t, rows["ensemble"], color="tab:blue", lw=1.2, label="ensemble")
        if "uncertainty" in rows:
            half = Z90 * rows["uncertainty"]
            ax.fill_between(t, rows["ensemble"] - half, rows["ensemble"] + half, color="tab:blue", alpha=0.2, lw=0,
                            label="90 % interval")
        if spread and "ensemble_std" in rows:
            ax.fill_between(t, rows["ensemble"] - rows["ensemble_std"], rows["ensemble"] + rows["ensemble_std"],
                            color="tab:blue", alpha=0.35, lw=0, label="± members' spread")
    ax.plot(t, rows["observed"], "o", ms=2.5, color="k", label=label)
    ax.tick_params(labelsize=7)
    locator = mdates.AutoDateLocator(minticks=3, maxticks=8)  # a few days still get day ticks
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def plot_scatter(pairs: pd.DataFrame, path: PathLike, reference: str = "reference", title: str = "",
                 bins: int = 60) -> Path:
    """Predicted vs reference density (2-D histogram, log counts) per method, with the 1:1 line.

    ``pairs`` has columns method, pred, ref (e.g. ``pairs.csv`` of ``evaluate_run`` filtered to one
    layer and reference). Each panel is annotated with r, RMSE, ubRMSE and n.
    """
    methods = _ordered(pairs["method"]) if len(pairs) else []
    lo, hi = _range([pairs["pred"], pairs["ref"]], q=(0.5, 99.5)) if len(pairs) else (0.0, 1.0)
    ncol = min(3, max(1, len(methods)))
    nrow = max(1, math.ceil(len(methods) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(2.8 * ncol, 2.7 * nrow), squeeze=False, sharex=True, sharey=True)
    for ax in axes.ravel()[len(methods):]:
        ax.set_axis_off()
    if not methods:
        axes[0, 0].text(0.5, 0.5, "no pairs", ha="center", va="center", transform=axes[0, 0].transAxes)
    for ax, method in zip(axes.ravel(), methods, strict=False):
        sub = pairs[pairs["method"] == method]
        x, y = sub["ref"].to_numpy(float), sub["pred"].to_numpy(float)
        ok = np.isfinite(x) & np.isfinite(y)
        if ok.any():
            ax.hist2d(x[ok], y[ok], bins=bins, range=[[lo, hi], [lo, hi]], cmap="viridis", norm=LogNorm(), cmin=1)
        ax.plot([lo, hi], [lo, hi], color="k", lw=0.8, ls="--")
        acc = Accumulator(None)
        acc.update(y, x)
        m = acc.result()
        ax.text(0.03, 0.97, f"r={m['r']:.3f}\nRMSE={m['rmse']:.4f}\nubRMSE={m['ubrmse']:.4f}\nn={m['n']}",
                transform=ax.transAxes, va="top", fontsize=7, bbox=dict(fc="white", alpha=0.7, lw=0))
        ax.set_title(method, fontsize=9)
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
    for ax in axes[-1]:
        ax.set_xlabel(f"{reference} (m³/m³)", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("predicted (m³/m³)", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_station_series(series: pd.DataFrame, path: PathLike, title: str = "", max_stations: int = 6) -> Path:
    """Time series per station: coarse input, ensemble with the 90 % interval of its calibrated uncertainty and
    its members' spread, and the station observations.

    ``series`` has columns station, date, observed and any of coarse, ensemble, ensemble_std, uncertainty (as
    ``smdown.evaluating.scores.station_series`` returns); at most ``max_stations`` stations are drawn.
    """
    stations = list(dict.fromkeys(series["station"]))[:max_stations] if len(series) else []
    n = max(1, len(stations))
    fig, axes = plt.subplots(n, 1, figsize=(7.5, 1.9 * n + 0.4), squeeze=False, sharex=False)
    if not stations:
        axes[0, 0].text(0.5, 0.5, "no station overlaps the run", ha="center", va="center",
                        transform=axes[0, 0].transAxes)
    for ax, name in zip(axes[:, 0], stations, strict=False):
        _station_lines(ax, series[series["station"] == name].sort_values("date"), "station", spread=True)
        ax.set_title(str(name), fontsize=9, loc="left")
        ax.set_ylabel("m³/m³", fontsize=8)
    if stations:
        axes[0, 0].legend(fontsize=7, ncol=4, loc="lower right", bbox_to_anchor=(1.0, 1.0), frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_metric_bars(metrics: pd.DataFrame, path: PathLike, names: Sequence[str] = ("r", "ubrmse", "bias",
                     "anomaly_r", "kge"), title: str = "") -> Path:
    """Bar chart of metrics across methods: one row per reference, one column per metric, a bar colour
    per layer (filter ``metrics`` to one layer for a per-layer figure). ``metrics`` is metrics.csv."""
    refs = list(dict.fromkeys(metrics["reference"])) if len(metrics) else ["-"]
    layers = list(dict.fromkeys(metrics["layer"])) if len(metrics) else []
    names = [m for m in names if m in metrics.columns]
    ncol = max(1, len(names))
    fig, axes = plt.subplots(len(refs), ncol, figsize=(2.4 * ncol, 1.9 * len(refs) + 0.5), squeeze=False)
    width = 0.8 / max(1, len(layers))
    for i, ref in enumerate(refs):
        sub = metrics[metrics["reference"] == ref]
        methods = _ordered(sub["method"])
        x = np.arange(len(methods))
        for j, name in enumerate(names):
            ax = axes[i, j]
            for k, layer in enumerate(layers):
                vals = sub[sub["layer"] == layer].set_index("method")[name].reindex(methods).to_numpy(float)
                ax.bar(x + (k - (len(layers) - 1) / 2) * width, np.nan_to_num(vals, nan=0.0), width,
                       label=layer, color=f"C{k}")
            ax.set_xticks(x, methods, rotation=45, fontsize=7)
            ax.tick_params(axis="y", labelsize=7)
            ax.axhline(0, color="k", lw=0.5)
            ax.set_title(f"{name} vs {ref}", fontsize=8)
    if layers:
        axes[0, -1].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_training_curves(histories: Mapping[str, pd.DataFrame], path: PathLike, title: str = "") -> Path:
    """Training and validation loss per epoch, one panel per model (history CSVs: epoch,loss,val_loss)."""
    models = _ordered(histories)
    n = max(1, len(models))
    fig, axes = plt.subplots(1, n, figsize=(2.8 * n, 2.4), squeeze=False)
    for ax, model in zip(axes[0], models, strict=False):
        h = histories[model]
        epoch = h["epoch"] if "epoch" in h else np.arange(len(h))
        for col, style in (("loss", "-"), ("val_loss", "--")):
            if col in h:
                ax.plot(epoch, h[col], style, lw=1.2, label=col)
        values = np.concatenate([h[c].to_numpy(float) for c in ("loss", "val_loss") if c in h] or [np.array([])])
        if values.size and np.all(values[np.isfinite(values)] > 0):
            ax.set_yscale("log")
        ax.set_title(model, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0, 0].set_ylabel("loss", fontsize=8)
    if models:
        axes[0, 0].legend(fontsize=7)
    else:
        axes[0, 0].text(0.5, 0.5, "no history", ha="center", va="center", transform=axes[0, 0].transAxes)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_sensitivity(importance: pd.DataFrame, curves: pd.DataFrame, path: PathLike, title: str = "") -> Path:
    """Sensitivity of one layer, models compared: permutation-importance bars and response curves.

    ``importance``: columns model, feature, importance (, importance_std); ``curves``: columns model,
    feature, value, prediction (``smdown.learning.sensitivity`` output with a ``model`` column added; without
    one, a single model is assumed). Features are ordered by their mean importance over models.
    """
    importance = importance if "model" in importance else importance.assign(model="model")
    curves = curves if "model" in curves else curves.assign(model="model")
    models = _ordered(list(importance["model"]) + list(curves["model"]))
    colours = {m: f"C{i}" for i, m in enumerate(models)}
    order = importance.groupby("feature")["importance"].mean().sort_values(ascending=False).index.tolist()
    order += [f for f in dict.fromkeys(curves["feature"]) if f not in order]
    ncurve = min(4, max(1, len(order)))
    nrow = max(1, math.ceil(len(order) / ncurve))
    fig = plt.figure(figsize=(3.2 + 2.2 * ncurve, max(2.6, 1.9 * nrow + 0.5)))
    grid = fig.add_gridspec(nrow, ncurve + 1, width_ratios=[1.6] + [1] * ncurve)
    ax = fig.add_subplot(grid[:, 0])
    y = np.arange(len(order))
    height = 0.8 / max(1, len(models))
    for k, model in enumerate(models):
        sub = importance[importance["model"] == model].set_index("feature").reindex(order)
        err = sub["importance_std"].to_numpy(float) if "importance_std" in sub else None
        ax.barh(y + (k - (len(models) - 1) / 2) * height, np.nan_to_num(sub["importance"].to_numpy(float)), height,
                xerr=err, color=colours[model], label=model, error_kw=dict(lw=0.6))
    ax.set_yticks(y, order, fontsize=7)
    ax.invert_yaxis()
    ax.axvline(0, color="k", lw=0.5)
    ax.set_xlabel("RMSE increase when permuted", fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    ax.legend(fontsize=7)
    for i, feature in enumerate(order):
        cax = fig.add_subplot(grid[i // ncurve, 1 + i % ncurve])
        for model in models:
            sub = curves[(curves["model"] == model) & (curves["feature"] == feature)].sort_values("value")
            if len(sub):
                cax.plot(sub["value"], sub["prediction"], color=colours[model], lw=1.2)
        cax.set_title(feature, fontsize=8)
        cax.tick_params(labelsize=6)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def _with_spread(table: pd.DataFrame) -> pd.DataFrame:
    """A table of evaluate's uncertainty.csv or reliability.csv with its ``spread`` column (older tables lack it:
    the members' spread)."""
    table = table.copy()
    if "spread" not in table.columns:
        table["spread"] = "ensemble_std"
    for column in ("layer", "reference", "method"):
        if column not in table.columns:
            table[column] = ""
    return table


def plot_reliability(bins: pd.DataFrame, uncertainty: pd.DataFrame, path: PathLike, title: str = "") -> Path:
    """Reliability of the predicted standard deviations: two panels, one line per layer x reference x spread
    (solid: the calibrated ``uncertainty``; dotted: the members' spread ``ensemble_std``).

    Left: observed RMSE against the RMS predicted std, per bin of predicted std (reliability.csv of
    ``smdown.evaluating.scores``); a calibrated std lies on the 1:1 line. Right: observed against nominal
    coverage of the central normal intervals (the ``coverage_XX`` columns of uncertainty.csv).
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(8.4, 3.8))
    bins, uncertainty = _with_spread(bins), _with_spread(uncertainty)
    groups = ["layer", "reference", "method", "spread"]
    pairs = sorted({(row.layer, row.reference) for row in pd.concat([bins, uncertainty]).itertuples()})
    color = {pair: f"C{k}" for k, pair in enumerate(pairs)}

    def style(row) -> dict:
        """A colour per layer x reference, solid for the calibrated uncertainty, dashed for the members' spread."""
        solid = row["spread"] == "uncertainty"
        return dict(color=color[(row["layer"], row["reference"])], ls="-" if solid else ":", marker="o" if solid else ".",
                    label=f"{row['layer']} / {row['reference']} / {row['spread']}")

    lo, hi = np.inf, 0.0
    for key, sub in bins.groupby(groups, sort=True) if len(bins) else []:
        x, y = sub["rms_std"].to_numpy(float), sub["rmse"].to_numpy(float)
        ok = (x > 0) & (y > 0)
        if ok.any():
            left.plot(x[ok], y[ok], ms=3, lw=1, **style(dict(zip(groups, key, strict=True))))
            lo, hi = min(lo, x[ok].min(), y[ok].min()), max(hi, x[ok].max(), y[ok].max())
    if hi > 0:
        left.plot([lo, hi], [lo, hi], "k--", lw=0.8, label="1:1")
        left.set_xscale("log")
        left.set_yscale("log")
        left.legend(fontsize=5)
    else:
        left.text(0.5, 0.5, "no spread scored", ha="center", va="center", transform=left.transAxes)
    left.set_xlabel("predicted std (RMS per bin, m³/m³)", fontsize=8)
    left.set_ylabel("observed RMSE (m³/m³)", fontsize=8)
    left.set_title("spread vs error", fontsize=9)
    columns = sorted(c for c in uncertainty.columns if str(c).startswith("coverage_"))
    nominal = np.array([int(c.split("_")[1]) / 100.0 for c in columns])
    for _, row in uncertainty.sort_values(groups).iterrows() if len(uncertainty) else []:
        right.plot(nominal, row[columns].to_numpy(float), ms=3, lw=1, **style(row))
    right.plot([0, 1], [0, 1], "k--", lw=0.8, label="1:1")
    right.set_xlim(0, 1)
    right.set_ylim(0, 1.02)
    right.set_xlabel("nominal coverage", fontsize=8)
    right.set_ylabel("observed coverage", fontsize=8)
    right.set_title("interval coverage", fontsize=9)
    right.legend(fontsize=5)
    for ax in (left, right):
        ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)

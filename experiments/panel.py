"""The skill panel: the workflow run on demo-generator worlds that differ from the default demo, scored
against their 30 m truth (`python -m experiments.bench skill`, `make bench-skill`).

Worlds (WORLDS) vary the seed, the size (3 x 3 to 5 x 5 coarse cells), the climate (wet and dry, storm size,
evaporative demand), irrigation on and off, relief, the soil product's resolution, the season and the coarse
retrieval's noise. They are split, fixed here, into a `tune` part (settings may be chosen on it) and an
`untouched` part (report it separately; never choose settings on it).

Each world runs in its own directory (`<out>/<world>/`, `snakemake --directory`) from a generated config:
the base config file, the world's `demo` settings and the `--set key=value` overrides (dotted keys, YAML
values, e.g. `--set models.l2=0`), with only the targets scoring needs (the 30 m maps of every method and
`weights.csv`; no evaluation, figures, sensitivity or report).

Scores per world x layer x method x split (`all` pixels and days; `test`: the test cells x test dates of
samples/split.json), streamed coarse cell by coarse cell (memory bounded by one cell's series):

- ``ubrmse``, ``rmse``, ``bias``, ``r``: against the 30 m truth (smdown.evaluating.metrics definitions);
- ``anomaly_r``: correlation of within-coarse-cell anomalies (each cell's daily mean removed);
- ``std_ratio``: within-cell standard deviation of the prediction / that of the truth (pooled);
- ``cell_rmse`` and ``within_rmse``: the error split into its coarse-cell block mean (per cell and day) and
  the remainder; RMS of each over the pixels (cell_rmse^2 + within_rmse^2 = rmse^2);
- ``ratio_cubic``: ubrmse / ubrmse of the cubic baseline on the same world, layer and split;
- ``collapsed``: std_ratio < COLLAPSED (the method paints a near-constant field inside each cell).

The uncertainty (`<out>/uncertainty.csv`): how well each standard-deviation map of the ensemble (the calibrated
``uncertainty`` and the members' spread ``ensemble_std``) describes the ensemble's error against the truth, per world
x layer x split (smdown.evaluating.metrics.Spread): ``coverage_90`` (share of |error| <= 1.645 sigma; 0.90 is calibrated),
``spread_error_r`` (correlation of sigma and |error|), ``mean_std`` and the ensemble's ``rmse``, and the proper
scores of N(ensemble, sigma): ``crps`` and ``interval_score_90`` (of the 90 % interval), each beside a constant sigma
of the same coverage (``*_constant``) and as a skill over it (``crps_skill``, ``interval_skill``: 1 - score /
constant's; above 0, sigma knows where the error is large); then their medians per
part x layer. A row ``truth_fitted_bound`` per world x layer gives, as ``spread_error_r``, how far any
sigma made from the maps could correlate with |error| (error_size_bound: a model of |error| fitted on the truth
of half the cells, scored on the others): a reference for the uncertainty's spread-error r.

Then the panel median per part x layer x method, and issue 9's acceptance checks on the untouched medians
(`acceptance`). The table goes to `<out>/skill.csv` (with the `--set` settings in a column).

Variants (`variant` in every table; each run in its own folder `<out>/<world>__<variant>/`, the default in
`<out>/<world>/`): `--stations sparse` (about one station per SPARSE_CELLS coarse cells) and `--stations none`
(no stations: the product is the members combined), comma-separated with `world` (the world's own); `--ceiling`
runs each world once more with samples.target truth and no stations: the members trained on the 30 m truth of
the training cells and days, an oracle no user has. Its ensemble on the test cells x days is the `ceiling` row of
every other variant of the world, and each method's share of the reachable gain over cubic,
(cubic - method) / (cubic - ceiling), is ``gain_share`` (ubRMSE) and ``within_gain_share`` (the within-cell part),
on the test split only (with_ceiling).

The weighting study (`<out>/weightings.csv`): how the ensemble would score under other member weights, from
the members' maps already written (no rerun). The sums of each member's error and of every product of two
members' errors give the ubRMSE of any convex combination exactly (ErrorMoments). Schemes: the weights the run
used, the rules' alternatives computed from weights.csv's validation columns (equal, inverse_mse,
inverse_ubmse, within_cell) and two oracles that see the truth (the best member; the best convex weights),
which bound what any weighting could reach.
"""

from __future__ import annotations

import argparse
import copy
import math
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from scipy.optimize import minimize

from smdown import config as smconfig
from smdown import contract as smcontract
from smdown import io
from smdown.contract import MEMBERS
from smdown.evaluating.metrics import Moments, Spread, cell_anomalies
from smdown.grid import nest_factor
from smdown.stations import read_split

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = "config/config.yaml"
DEFAULT_OUT = "results/panel"
PARTS = ("tune", "untouched")
COLLAPSED = 0.05  # within-cell std ratio below which a method counts as collapsed
METHOD_ORDER = ("dnn", "cnn", "lstm", "ensemble", "rf")
RF = "rf"  # the random-forest peer the ensemble must beat
SCORES = ["ubrmse", "ratio_cubic", "anomaly_r", "std_ratio", "cell_rmse", "within_rmse", "rmse", "bias", "r"]
COLUMNS = ["world", "part", "layer", "method", "split", "n", *SCORES, "truth_within_std", "weight", "collapsed"]
SPREADS = ("ensemble_std", "uncertainty")  # standard-deviation maps of the ensemble beside the methods, not methods
NOT_METHODS = (*SPREADS, "aoa")  # maps beside the methods that are no soil moisture (aoa: the area of applicability)
UNCERTAINTY_SCORES = ["coverage_90", "spread_error_r", "mean_std", "rmse", "crps", "crps_constant", "crps_skill",
                      "interval_score_90", "interval_score_90_constant", "interval_skill"]
UNCERTAINTY_COLUMNS = ["world", "part", "layer", "spread", "split", "n", *UNCERTAINTY_SCORES]


@dataclass(frozen=True)
class PanelWorld:
    """One panel world: a name, its part (tune or untouched) and its `demo` settings."""

    name: str
    part: str
    demo: dict = field(default_factory=dict)
    about: str = ""


WORLDS: tuple[PanelWorld, ...] = (
    # tune: settings may be chosen on these
    PanelWorld("dry_irrigated_summer", "tune", dict(
        seed=101, coarse_rows=4, coarse_cols=4, days=40, start="2023-06-15", wet_day_probability=0.03,
        irrigated_fraction=0.6, pet_scale=1.2), "dry hot summer, irrigation on"),
    PanelWorld("wet_rainfed_hills", "tune", dict(
        seed=102, coarse_rows=3, coarse_cols=3, days=40, start="2023-10-15", wet_day_probability=0.3,
        mean_storm_mm=18.0, irrigated_fraction=0.0, relief=3.0), "wet autumn, no irrigation, 3x relief"),
    PanelWorld("spring_storms_noisy", "tune", dict(
        seed=103, coarse_rows=3, coarse_cols=4, days=35, start="2023-03-01", wet_day_probability=0.12,
        mean_storm_mm=25.0, coarse_noise_surface=0.035, coarse_noise_rootzone=0.02), "big spring storms, noisy coarse"),
    PanelWorld("flat_coarse_soil", "tune", dict(
        seed=104, coarse_rows=5, coarse_cols=5, days=30, start="2023-08-01", relief=0.4, soil_res_deg=0.01,
        irrigated_fraction=0.3), "flat, 1 km soil product, large"),
    # untouched: report only, never choose settings on these
    PanelWorld("hot_dry_irrigated", "untouched", dict(
        seed=201, coarse_rows=4, coarse_cols=4, days=40, start="2023-07-01", wet_day_probability=0.02,
        pet_scale=1.3, irrigated_fraction=0.5), "hot dry summer, irrigation on"),
    PanelWorld("wet_winter_rainfed", "untouched", dict(
        seed=202, coarse_rows=3, coarse_cols=3, days=40, start="2023-12-01", wet_day_probability=0.35,
        mean_storm_mm=10.0, irrigated_fraction=0.0, relief=2.0), "wet winter, no irrigation, 2x relief"),
    PanelWorld("cloudbursts_noisy", "untouched", dict(
        seed=203, coarse_rows=4, coarse_cols=3, days=35, start="2023-04-01", wet_day_probability=0.1,
        mean_storm_mm=30.0, coarse_noise_surface=0.04, coarse_noise_rootzone=0.02), "rare big storms, noisy coarse"),
    PanelWorld("steep_fine_soil", "untouched", dict(
        seed=204, coarse_rows=4, coarse_cols=4, days=35, start="2023-09-15", relief=4.0, soil_res_deg=0.001,
        irrigated_fraction=0.8, pet_scale=0.8), "steep, 100 m soil product, mostly irrigated"),
    PanelWorld("large_rainfed_clean", "untouched", dict(
        seed=205, coarse_rows=5, coarse_cols=5, days=30, start="2023-05-15", irrigated_fraction=0.0,
        coarse_noise_surface=0.01, coarse_noise_rootzone=0.005), "large, no irrigation, quiet coarse"),
)


def select_worlds(spec: str, worlds: Sequence[PanelWorld] = WORLDS) -> list[PanelWorld]:
    """`tune`, `untouched`, `all` or comma-separated world names."""
    if spec == "all":
        return list(worlds)
    if spec in PARTS:
        return [w for w in worlds if w.part == spec]
    by_name = {w.name: w for w in worlds}
    names = [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in by_name]
    if unknown or not names:
        raise ValueError(f"--worlds: unknown world(s) {unknown}; choose tune, untouched, all or names from "
                         f"{sorted(by_name)}")
    return [by_name[n] for n in names]


# ---------------------------------------------------------------- variants

STATIONS = ("world", "sparse", "none")  # the world's own stations, about one per ten coarse cells, none
SPARSE_CELLS = 10  # coarse cells per station in the sparse variant
DEFAULT_VARIANT = "default"
CEILING = "ceiling"  # the variant whose members learn from the truth; it runs without stations (nothing refined)


def parse_stations(spec: str) -> list[str]:
    """`--stations`: comma-separated station variants among STATIONS."""
    names = [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in STATIONS]
    if unknown or not names:
        raise ValueError(f"--stations: unknown variant(s) {unknown}; choose among {', '.join(STATIONS)}")
    return list(dict.fromkeys(names))


def variant_name(stations: str = "world", ceiling: bool = False) -> str:
    """A variant's name (its folder's suffix and the tables' `variant`): default, stations_sparse, stations_none, or
    ceiling (whatever the stations: the ceiling runs without any)."""
    if ceiling:
        return CEILING
    return DEFAULT_VARIANT if stations == "world" else f"stations_{stations}"


def world_dir(out: Path, world: PanelWorld, variant: str = DEFAULT_VARIANT) -> Path:
    """<out>/<world>/ for the default variant, <out>/<world>__<variant>/ for the others."""
    return Path(out) / (world.name if variant == DEFAULT_VARIANT else f"{world.name}__{variant}")


def sparse_station_count(coarse_rows: int, coarse_cols: int) -> int:
    """About one station per SPARSE_CELLS coarse cells, at least one."""
    return max(1, int(coarse_rows * coarse_cols / SPARSE_CELLS + 0.5))


# ---------------------------------------------------------------- configs


def finished_worlds(out: Path, spec: str, variant: str = DEFAULT_VARIANT) -> Iterator[tuple[PanelWorld, Path]]:
    """(world, its run's folder) for each world of `spec` with a run of `variant` in the panel folder `out`; the
    others are named as skipped."""
    for world in select_worlds(spec):
        workdir = world_dir(Path(out), world, variant)
        if (workdir / "config.yaml").exists():
            yield world, workdir
        else:
            print(f"{world.name}: no run in {workdir}; skipped")


def parse_set(items: Iterable[str]) -> dict[str, object]:
    """`key=value` strings (dotted keys, YAML values) -> {dotted key: value}."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set {item!r}: expected key=value, e.g. models.l2=0")
        out[key.strip()] = yaml.safe_load(value)
    return out


def apply_set(config: dict, overrides: Mapping[str, object]) -> dict:
    """A copy of config with each dotted key set to its value (missing mappings are created)."""
    config = copy.deepcopy(config)
    for key, value in overrides.items():
        node = config
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ValueError(f"--set {key}: '{part}' is not a mapping in the config")
            node = child
        node[parts[-1]] = copy.deepcopy(value)
    return config


def world_config(base: dict, world: PanelWorld, overrides: Mapping[str, object], stations: str = "world",
                 ceiling: bool = False) -> dict:
    """The run config of one world: base, the world's demo settings (the demo source), the overrides, then the
    variant's settings: `stations` none (demo.stations 0) or sparse (sparse_station_count of the world's cells;
    world keeps its own), and with `ceiling` samples.target truth and no stations (the members trained on the truth
    of the training cells and days, combined, nothing refined: the ceiling of what the predictors allow). The
    stations are drawn from a random stream of their own, so every variant has the same truth, coarse input and
    split.

    Validated against the schema (a bad override stops with the key's name); returned unvalidated, as
    written to the world's config file.
    """
    config = copy.deepcopy(base)
    for key in ("inputs", "acquire"):
        config.pop(key, None)
    config["source"] = "demo"
    config["demo"] = {**config.get("demo", {}), **world.demo}
    config = apply_set(config, overrides)
    if stations not in STATIONS:
        raise ValueError(f"stations variant {stations!r}: choose among {', '.join(STATIONS)}")
    if ceiling:
        stations = "none"
    if stations != "world":
        demo = smconfig.validate(config)["demo"]
        config["demo"]["stations"] = 0 if stations == "none" else sparse_station_count(demo["coarse_rows"],
                                                                                        demo["coarse_cols"])
    if ceiling:
        config = apply_set(config, {"samples.target": "truth"})
    smconfig.validate(config)
    return config


# ---------------------------------------------------------------- running


def _snakemake() -> list[str]:
    exe = Path(sys.executable).parent / "snakemake"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "snakemake"]


def targets(config: dict) -> list[str]:
    """What scoring needs, relative to the world's directory: every method's 30 m maps (each merged from its
    tiles, so each is a target: the members, the ensemble, the random forest, the cubic baseline), weights.csv and
    the split; and the error inside and outside the area of applicability where it is mapped (config aoa)."""
    validated = smconfig.validate(config)
    run = f"results/{validated['run']}"
    out = [f"{run}/samples/split.json"]
    for layer in smconfig.inputs_of(validated).layers:
        out += [f"{run}/downscaled/{layer}/{method}.tif" for method in (*MEMBERS, "ensemble", "rf", "cubic", *SPREADS)]
        out.append(f"{run}/ensemble/{layer}/weights.csv")
    if validated["aoa"]["enabled"]:
        out.append(f"{run}/evaluation/{APPLICABILITY}")
    return out


APPLICABILITY = "applicability.csv"  # a world's evaluation/applicability.csv, gathered into <out>/applicability.csv


def applicability_rows(world: PanelWorld, workdir: Path, config: dict, variant: str) -> pd.DataFrame | None:
    """The world's error inside and outside the area of applicability (its run's evaluation/applicability.csv: the
    test cells and days), labelled with the world, its part and the variant; None where the run has none."""
    path = Path(workdir) / "results" / smconfig.validate(config)["run"] / "evaluation" / APPLICABILITY
    if not path.exists():
        return None
    return pd.read_csv(path).assign(world=world.name, part=world.part, variant=variant)


def applicability_summary(table: pd.DataFrame, method: str = "ensemble") -> pd.DataFrame:
    """Per variant, part and layer: the median over the worlds of the share of test pixel-days outside the area of
    applicability and of `method`'s ubRMSE outside over inside."""
    rows = table[table["method"] == method]
    wide = rows.pivot_table(index=["variant", "part", "world", "layer"], columns="area", values=["ubrmse", "share"])
    ratio = (wide[("ubrmse", "outside")] / wide[("ubrmse", "inside")]).rename("outside_over_inside")
    share = wide[("share", "outside")].rename("share_outside")
    both = pd.concat([share, ratio], axis=1).reset_index()
    return both.groupby(["variant", "part", "layer"], sort=False)[["share_outside", "outside_over_inside"]].median()


def run_world(world: PanelWorld, config: dict, workdir: Path, cores: int, fresh: bool = False) -> tuple[bool, float]:
    """Run the workflow for one world in its own directory; the Snakemake output goes to workdir/snakemake.log.

    Returns (success, seconds).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    if fresh:
        shutil.rmtree(workdir / "results", ignore_errors=True)
    config_path = workdir / "config.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    command = [*_snakemake(), "-s", str(ROOT / "Snakefile"), "--directory", str(workdir), "--configfile",
               str(config_path), "--cores", str(cores), "--rerun-incomplete", *targets(config)]
    start = time.perf_counter()
    with open(workdir / "snakemake.log", "w") as log:
        log.write(" ".join(command) + "\n")
        log.flush()
        done = subprocess.run(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    return done.returncode == 0, time.perf_counter() - start


# ---------------------------------------------------------------- scoring


class Skill:
    """Skill scores of a prediction against the truth, streamed over blocks made of whole coarse cells
    (``update(pred, truth)`` with arrays (..., rows, cols), then ``result()``); NaN pairs are left out."""

    def __init__(self, factor: int) -> None:
        self.factor = int(factor)
        self.values = Moments()
        self.anomalies = Moments()
        self.n = 0
        self.ss_anom_pred = 0.0  # sum of squared within-cell anomalies
        self.ss_anom_truth = 0.0
        self.ss_cell_err = 0.0  # sum over pixels of (cell-mean error)^2
        self.ss_within_err = 0.0

    def update(self, pred: np.ndarray, truth: np.ndarray) -> None:
        ap, ao = cell_anomalies(pred, truth, self.factor)
        ok = np.isfinite(ap)
        if not ok.any():
            return
        p = np.asarray(pred, dtype=np.float64)[ok]
        o = np.asarray(truth, dtype=np.float64)[ok]
        ap, ao = ap[ok], ao[ok]
        self.values.update(p, o)
        self.anomalies.update(ap, ao)
        within = ap - ao
        cell = (p - o) - within
        self.n += int(p.size)
        self.ss_anom_pred += float(ap @ ap)
        self.ss_anom_truth += float(ao @ ao)
        self.ss_cell_err += float(cell @ cell)
        self.ss_within_err += float(within @ within)

    def result(self) -> dict[str, float]:
        out = self.values.metrics()
        nan = float("nan")
        n = self.n
        out.update(
            anomaly_r=self.anomalies.r(),
            std_ratio=math.sqrt(self.ss_anom_pred / self.ss_anom_truth) if self.ss_anom_truth > 0 else nan,
            truth_within_std=math.sqrt(self.ss_anom_truth / n) if n else nan,
            cell_rmse=math.sqrt(self.ss_cell_err / n) if n else nan,
            within_rmse=math.sqrt(self.ss_within_err / n) if n else nan,
        )
        return {key: out[key] for key in ("n", "ubrmse", "rmse", "bias", "r", "anomaly_r", "std_ratio",
                                          "truth_within_std", "cell_rmse", "within_rmse")}


def skill(pred: np.ndarray, truth: np.ndarray, factor: int) -> dict[str, float]:
    """Skill scores of whole arrays (see Skill)."""
    acc = Skill(factor)
    acc.update(pred, truth)
    return acc.result()


def method_files(downscaled: Path) -> dict[str, Path]:
    """The method rasters of a layer's downscaled folder (the spread and applicability maps left out), in
    METHOD_ORDER, then any others, cubic last."""
    found = {p.stem: p for p in sorted(Path(downscaled).glob("*.tif")) if p.stem not in NOT_METHODS}
    order = [m for m in METHOD_ORDER if m in found] + sorted(set(found) - {*METHOD_ORDER, "cubic"})
    return {m: found[m] for m in order + (["cubic"] if "cubic" in found else [])}


class ErrorMoments:
    """Sums of the members' errors against the truth and of the products of every two, over the pixel-days where
    the truth and every member are finite: enough to score any convex combination of the members afterwards,
    since with weights w summing to 1 the ensemble's error is w'e, so ubMSE(w) = w'Cw - (w'b)^2 with
    C = E[e e'] and b = E[e]."""

    def __init__(self, members: Sequence[str]) -> None:
        self.members = list(members)
        self.n = 0
        self.total = np.zeros(len(self.members))
        self.cross = np.zeros((len(self.members), len(self.members)))

    def update(self, preds: Mapping[str, np.ndarray], truth: np.ndarray) -> None:
        truth = np.asarray(truth, np.float64).ravel()
        err = np.stack([np.asarray(preds[m], np.float64).ravel() - truth for m in self.members])
        err = err[:, np.isfinite(err).all(axis=0)]
        self.n += err.shape[1]
        self.total += err.sum(axis=1)
        self.cross += err @ err.T

    def ubrmse(self, weights: Mapping[str, float]) -> float:
        """ubRMSE of the members combined with `weights` (renormalised to sum to 1; a missing member weighs 0)."""
        w = np.array([max(float(weights.get(m, 0.0)), 0.0) for m in self.members])
        if self.n == 0 or not np.isfinite(w).all() or w.sum() <= 0:
            return float("nan")
        w /= w.sum()
        mean = self.total / self.n
        return math.sqrt(max(float(w @ (self.cross / self.n) @ w - (w @ mean) ** 2), 0.0))

    def covariance(self) -> np.ndarray:
        """Covariance of the members' errors: the ubMSE of convex weights w is w' cov w."""
        mean = self.total / self.n
        return self.cross / self.n - np.outer(mean, mean)

    def best_convex(self, among: Sequence[str] | None = None) -> dict[str, float]:
        """The convex weights with the lowest ubRMSE against the truth (an oracle: no run can know them), the
        minimum of w' cov w on the simplex, solved on the covariance scaled to unit trace; over the members
        `among` (default all), the others weighing 0."""
        among = list(self.members if among is None else among)
        pick = [self.members.index(m) for m in among]
        k = len(among)
        cov = self.covariance()[np.ix_(pick, pick)]
        cov = cov / max(float(np.trace(cov)), 1e-300)
        fit = minimize(lambda w: w @ cov @ w, np.full(k, 1.0 / k), jac=lambda w: 2 * cov @ w, method="SLSQP",
                       bounds=[(0.0, 1.0)] * k, constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0}],
                       options={"ftol": 1e-14, "maxiter": 500})
        w = np.clip(fit.x, 0.0, None)
        return {**dict.fromkeys(self.members, 0.0), **dict(zip(among, (w / w.sum()).tolist(), strict=True))}


def weighting_schemes(table: pd.DataFrame, moments: ErrorMoments) -> dict[str, dict[str, float]]:
    """Member weights per scheme: as the run used them (weights.csv), the rules' alternatives from weights.csv's
    validation columns (NaN where the column is missing) over the deep members, the same with the random forest
    joining them (ensemble.forest; where its map is among the moments), and the two oracles over the deep members."""
    rows = table.set_index("member").reindex(moments.members)
    deep = [m for m in moments.members if m != RF]

    def inverse(column: str, power: float = 1.0, among: Sequence[str] = deep) -> dict[str, float]:
        values = rows[column] if column in rows else pd.Series(np.nan, index=rows.index)
        return {m: 1.0 / max(float(values[m]), 1e-12) ** power for m in among}

    each = {m: moments.ubrmse({m: 1.0}) for m in deep}
    best = min(each, key=lambda m: each[m] if np.isfinite(each[m]) else np.inf)
    schemes = {
        "as run": dict(rows["weight"].fillna(0.0)),
        "equal": dict.fromkeys(deep, 1.0),
        "inverse_mse": inverse("val_rmse", 2),
        "inverse_ubmse": inverse("val_ubrmse", 2),
        "within_cell": inverse("similarity_nmse"),
    }
    if RF in moments.members:
        schemes["forest joins: equal"] = dict.fromkeys(moments.members, 1.0)
        schemes["forest joins: inverse_mse"] = inverse("val_rmse", 2, moments.members)
    schemes["oracle: best member"] = {m: float(m == best) for m in deep}
    schemes["oracle: best weights"] = moments.best_convex(deep)
    return schemes


WEIGHTING_COLUMNS = ["world", "part", "layer", "scheme", "ubrmse", "ratio_cubic", "ratio_best", "weights"]


def weighting_rows(world: PanelWorld, layer: str, moments: ErrorMoments, table: pd.DataFrame,
                   cubic_ubrmse: float) -> list[dict]:
    """Rows (WEIGHTING_COLUMNS) of one world x layer: each scheme's ensemble ubRMSE, its ratio to cubic and to
    the best member."""
    best = min(moments.ubrmse({m: 1.0}) for m in moments.members if m != RF)
    rows = []
    for scheme, weights in weighting_schemes(table, moments).items():
        score = moments.ubrmse(weights)
        total = sum(weights.values())
        shares = " ".join(f"{m} {weights[m] / total:.2f}" for m in moments.members if m in weights) if total > 0 else ""
        rows.append({"world": world.name, "part": world.part, "layer": layer, "scheme": scheme, "ubrmse": score,
                     "ratio_cubic": score / cubic_ubrmse, "ratio_best": score / best, "weights": shares})
    return rows


def format_weightings(table: pd.DataFrame) -> str:
    """Median over the worlds of each scheme's ensemble ubRMSE / cubic and / best member, per part x layer."""
    lines = ["weighting study: the ensemble under other member weights (median over worlds; ubRMSE / cubic, "
             "/ best member)"]
    grouped = table.groupby(["part", "layer", "scheme"], sort=False)
    med = grouped[["ratio_cubic", "ratio_best"]].median()
    med["worlds"] = grouped["world"].nunique()
    for (part, layer, scheme), row in med.iterrows():
        lines.append(f"  {part:<9} {layer:<8} {scheme:<21} {int(row.worlds):>2} world(s)  {row.ratio_cubic:6.3f} "
                     f"{row.ratio_best:6.3f}")
    return "\n".join(lines)


def score_layer(truth_path: Path, methods: Mapping[str, Path], factor: int, split: Mapping | None = None,
                moments: ErrorMoments | None = None, spreads: Mapping[str, Path] | None = None,
                spread_scores: dict | None = None) -> dict[tuple[str, str], dict[str, float]]:
    """Scores of each method against the truth raster, on all pixels and days and (with a split holding
    test_cells and test_dates) on the test cells x test dates; read one coarse cell (factor x factor
    pixels) at a time.

    Returns {(method, split name): scores}; the methods must be on the truth's grid, with its dates. With
    ``moments``, its members' errors on all pixels and days are summed into it as well. With ``spreads``
    ({name: path} of standard-deviation maps of the ensemble, which must be among the methods) and a dict
    ``spread_scores``, that dict receives {(name, split name): Spread result} of the ensemble's error.
    """
    grid = io.read_grid(truth_path)
    if grid.height % factor or grid.width % factor:
        raise ValueError(f"{truth_path}: {grid.height} x {grid.width} pixels are not whole coarse cells of {factor}")
    dates = io.read_dates(truth_path)
    bands = {}
    spreads = dict(spreads or {})
    if spreads and "ensemble" not in methods:
        raise ValueError(f"{truth_path}: spread maps {sorted(spreads)} given without the ensemble's map")
    for method, path in {**methods, **spreads}.items():
        own = io.read_grid(path)
        if (own.height, own.width) != (grid.height, grid.width) or not np.allclose(own.transform, grid.transform):
            raise ValueError(f"{path}: not on the grid of the truth {truth_path}")
        bands[method] = io.bands_of_dates(path, dates)
    split = read_split(split) if split else {}
    test_cells = set(split.get("test_cells", []))
    test_days = [i for i, d in enumerate(dates) if d in set(split.get("test_dates", []))]
    rows, cols = grid.height // factor, grid.width // factor
    acc = {(m, "all"): Skill(factor) for m in methods}
    if test_cells and test_days:
        acc.update({(m, "test"): Skill(factor) for m in methods})
    spread_acc = {(name, part): Spread() for name in spreads for part in {a[1] for a in acc}}
    for r in range(rows):
        for c in range(cols):
            truth = io.read_window(truth_path, r * factor, c * factor, factor, factor)
            preds = {}
            for method, path in methods.items():
                pred = preds[method] = io.read_window(path, r * factor, c * factor, factor, factor,
                                                      bands=bands[method])
                acc[(method, "all")].update(pred, truth)
                if (r, c) in test_cells and (method, "test") in acc:
                    acc[(method, "test")].update(pred[test_days], truth[test_days])
            if moments is not None:
                moments.update(preds, truth)
            for name, path in spreads.items():  # each spread map read once a cell, for both splits
                std = io.read_window(path, r * factor, c * factor, factor, factor, bands=bands[name])
                spread_acc[(name, "all")].update(preds["ensemble"], std, truth)
                if (r, c) in test_cells and (name, "test") in spread_acc:
                    spread_acc[(name, "test")].update(preds["ensemble"][test_days], std[test_days], truth[test_days])
    if spread_scores is not None:
        spread_scores.update({key: s.result() for key, s in spread_acc.items()})
    return {key: a.result() for key, a in acc.items()}


BOUND = "truth_fitted_bound"  # uncertainty.csv: a model of |error| fitted on the truth (error_size_bound)
BOUND_SAMPLES = 300_000


def error_size_bound(truth_path: Path, features: Mapping[str, Path], factor: int, samples: int = BOUND_SAMPLES,
                     seed: int = 0) -> dict[str, float]:
    """How much of the ensemble's error size the maps could tell at all: the correlation between |ensemble - truth|
    and a gradient-boosted model of it on the values of ``features`` (the ensemble's map, which must be among them,
    the other methods', the spreads', the predictors'; static rasters repeat every day) at each pixel-day, fitted
    on the truth of half the coarse cells and scored on the others (about ``samples`` pixel-days drawn in all).

    A reference, not a method: a user has no 30 m truth to fit such a model on, so an uncertainty built from these
    maps reaches less; far less, it says, is not for want of information in the maps. NaN with fewer than 4 cells.
    """
    from sklearn.ensemble import HistGradientBoostingRegressor

    if "ensemble" not in features:
        raise ValueError(f"{truth_path}: the error-size bound needs the ensemble's map among the features")
    grid = io.read_grid(truth_path)
    dates = io.read_dates(truth_path)
    rows, cols = grid.height // factor, grid.width // factor
    if rows * cols < 4:
        return {"n": 0, "r": float("nan")}
    bands = {name: io.bands_of_dates(path, dates) for name, path in features.items()}
    rate = min(1.0, samples / (rows * cols * factor * factor * len(dates)))
    rng = np.random.default_rng(seed)
    held_out = set(rng.permutation(rows * cols)[: rows * cols // 2].tolist())
    parts: dict[bool, tuple[list, list]] = {False: ([], []), True: ([], [])}
    for r in range(rows):
        for c in range(cols):
            window = (r * factor, c * factor, factor, factor)
            truth = io.read_window(truth_path, *window)
            values = {}
            for name, path in features.items():
                data = io.read_window(path, *window, bands=bands[name]) if bands[name] is not None \
                    else io.read_window(path, *window)
                values[name] = np.broadcast_to(data, truth.shape)
            keep = np.random.default_rng([seed, r, c]).random(truth.shape) < rate
            keep &= np.isfinite(truth) & np.all([np.isfinite(v) for v in values.values()], axis=0)
            x, y = parts[r * cols + c in held_out]
            x.append(np.stack([v[keep] for v in values.values()], axis=1))
            y.append(np.abs(values["ensemble"][keep] - truth[keep]))
    (fit_x, fit_y), (score_x, score_y) = ((np.concatenate(a), np.concatenate(b)) for a, b in (parts[False], parts[True]))
    if min(len(fit_y), len(score_y)) < 100:
        return {"n": int(len(score_y)), "r": float("nan")}
    model = HistGradientBoostingRegressor(max_iter=200, learning_rate=0.05, random_state=seed).fit(fit_x, fit_y)
    predicted = model.predict(score_x)
    r = float(np.corrcoef(predicted, score_y)[0, 1]) if np.std(predicted) > 0 else 0.0
    return {"n": int(len(score_y)), "r": r}


def predictor_files(run: Path, config: dict, layer: str) -> dict[str, Path]:
    """The predictors on the run's finest grid (``scales/<finest>/``), the layer's own coarse field among them."""
    folder = run / "scales" / smconfig.scale_name(min(config["scales"]))
    other = {f"coarse_{name}" for name in smcontract.LAYERS if name != layer}
    files = sorted([*folder.glob("*.tif"), *folder.glob("*.vrt")])  # the daily ones: VRTs over their tiles
    return {p.stem: p for p in files if p.stem not in other}


def read_weights(path: Path) -> dict[str, float]:
    """member -> weight from an ensemble weights.csv (empty when missing)."""
    if not Path(path).exists():
        return {}
    table = pd.read_csv(path)
    return dict(zip(table["member"], table["weight"], strict=True)) if "member" in table else {}


def score_world(world: PanelWorld, workdir: Path, config: dict, weightings: list | None = None,
                uncertainty: list | None = None) -> list[dict]:
    """Rows (COLUMNS) of one finished world: every layer x method x split; with ``weightings``, the weighting
    study's rows (WEIGHTING_COLUMNS) are appended to it; with ``uncertainty``, the rows (UNCERTAINTY_COLUMNS) of
    each spread map found."""
    validated = smconfig.validate(config)
    run = Path(workdir) / "results" / validated["run"]
    inputs = smconfig.inputs_of(validated)
    split_path = run / "samples" / "split.json"
    split = read_split(split_path) if split_path.exists() else None
    rows = []
    for layer in inputs.layers:
        truth = Path(workdir) / inputs.truth[layer]
        factor = nest_factor(io.read_grid(Path(workdir) / inputs.coarse[layer]).res, io.read_grid(truth).res)
        methods = method_files(run / "downscaled" / layer)
        weights_csv = run / "ensemble" / layer / "weights.csv"
        weights = read_weights(weights_csv)
        members = [m for m in MEMBERS if m in methods and m in weights]
        joining = members + [RF] if RF in methods and RF in weights else members  # the forest may join (its scheme)
        moments = ErrorMoments(joining) if weightings is not None and members else None
        spreads = {name: run / "downscaled" / layer / f"{name}.tif" for name in SPREADS}
        spreads = {name: path for name, path in spreads.items() if path.exists() and "ensemble" in methods}
        spread_scores = {}
        scores = score_layer(truth, methods, factor, split, moments, spreads, spread_scores)
        rows += table_rows(world, layer, scores, weights)
        if uncertainty is not None:
            uncertainty += uncertainty_rows(world, layer, spread_scores)
            if "ensemble" in methods:
                bound = error_size_bound(truth, {**methods, **spreads, **predictor_files(run, validated, layer)}, factor)
                uncertainty.append({"world": world.name, "part": world.part, "layer": layer, "spread": BOUND,
                                    "split": "all", "n": bound["n"], "coverage_90": float("nan"),
                                    "spread_error_r": bound["r"], "mean_std": float("nan"), "rmse": float("nan")})
        if moments is not None and ("cubic", "all") in scores:
            weightings += weighting_rows(world, layer, moments, pd.read_csv(weights_csv),
                                         scores[("cubic", "all")]["ubrmse"])
    return rows


def table_rows(world: PanelWorld, layer: str, scores: Mapping[tuple[str, str], dict],
               weights: Mapping[str, float]) -> list[dict]:
    """Rows of one layer with ratio_cubic, weight and the collapsed flag."""
    rows = []
    for (method, split), s in scores.items():
        cubic = scores.get(("cubic", split), {}).get("ubrmse", float("nan"))
        ratio = s["ubrmse"] / cubic if cubic and np.isfinite(cubic) else float("nan")
        rows.append({"world": world.name, "part": world.part, "layer": layer, "method": method, "split": split,
                     **s, "ratio_cubic": ratio, "weight": weights.get(method, float("nan")),
                     "collapsed": bool(np.isfinite(s["std_ratio"]) and s["std_ratio"] < COLLAPSED)})
    return [{key: row[key] for key in COLUMNS} for row in rows]


def uncertainty_rows(world: PanelWorld, layer: str, spread_scores: Mapping[tuple[str, str], dict]) -> list[dict]:
    """Rows (UNCERTAINTY_COLUMNS) of one layer from {(spread name, split): Spread result}."""
    rows = []
    for (name, split), s in sorted(spread_scores.items()):
        rows.append({"world": world.name, "part": world.part, "layer": layer, "spread": name, "split": split,
                     "n": s["n"], "coverage_90": s["coverage90"],
                     **{score: s[score] for score in UNCERTAINTY_SCORES[1:]}})
    return rows


def format_uncertainty(table: pd.DataFrame, split: str = "all") -> str:
    """Median over the worlds of each spread map's coverage and spread-error r, per part x layer."""
    sub = table[table["split"] == split]
    grouped = sub.groupby(["part", "layer", "spread"], sort=False)
    med = grouped[UNCERTAINTY_SCORES].median()
    low = grouped[["coverage_90", "spread_error_r"]].min()
    high = grouped[["coverage_90", "spread_error_r"]].max()
    lines = ["uncertainty: the ensemble's error against sigma (median over worlds [min, max]; goal: coverage "
             "0.80-0.95, r >= 0.3)"]
    for key, row in med.iterrows():
        part, layer, spread = key
        if spread == BOUND:
            lines.append(f"  {part:<9} {layer:<8} {spread}: r {row.spread_error_r:.3f} [{low.loc[key, 'spread_error_r']:.3f}, "
                         f"{high.loc[key, 'spread_error_r']:.3f}] (|error| modelled from the maps on the truth of half "
                         "the cells: what the maps could tell, not a method)")
            continue
        lines.append(f"  {part:<9} {layer:<8} {spread:<12} coverage_90 {row.coverage_90:.3f} "
                     f"[{low.loc[key, 'coverage_90']:.3f}, {high.loc[key, 'coverage_90']:.3f}]  spread-error r "
                     f"{row.spread_error_r:.3f} [{low.loc[key, 'spread_error_r']:.3f}, "
                     f"{high.loc[key, 'spread_error_r']:.3f}]  mean sigma {row.mean_std:.4f}  rmse {row.rmse:.4f}  "
                     f"crps skill {row.crps_skill:.3f}  interval skill {row.interval_skill:.3f}")
    return "\n".join(lines)


def panel_median(table: pd.DataFrame, split: str = "all") -> pd.DataFrame:
    """Median of the scores over the worlds, per part x layer x method (and the count of collapsed worlds)."""
    sub = table[table["split"] == split]
    if sub.empty:
        return pd.DataFrame(columns=["part", "layer", "method", "worlds", *SCORES, "collapsed"])
    grouped = sub.groupby(["part", "layer", "method"], sort=False)
    med = grouped[SCORES].median()
    med.insert(0, "worlds", grouped["world"].nunique())
    med["collapsed"] = grouped["collapsed"].sum().astype(int)
    return med.reset_index()





# ---------------------------------------------------------------- the ceiling

GAINS = ["gain_share", "within_gain_share"]
SKILL_COLUMNS = [*COLUMNS[:2], "variant", *COLUMNS[2:], *GAINS]  # skill.csv


def gain_share(cubic: float, method: float, ceiling: float) -> float:
    """The share of the reachable gain over cubic a method takes: (cubic - method) / (cubic - ceiling), errors of
    the same kind (ubRMSE, or the within-cell part); 1 reaches the ceiling, 0 is cubic's, below 0 worse than cubic.
    NaN where the ceiling is no better than cubic (nothing to reach)."""
    room = cubic - ceiling
    return float((cubic - method) / room) if np.isfinite(room) and np.isfinite(method) and room > 0 else float("nan")


def with_ceiling(table: pd.DataFrame) -> pd.DataFrame:
    """The skill table (SKILL_COLUMNS, a `variant` column) with the ceiling's comparisons, on split `test` only (the
    ceiling run saw the truth of every other cell-day): per world x layer, the ceiling is the ceiling variant's
    ensemble (its members combined; no stations, so nothing refined).
    Each test row of that world x layer gets its gain_share (ubRMSE) and within_gain_share (within-cell RMSE)
    against its own variant's cubic; each other variant gets a row of method `ceiling` (the ceiling's scores, its
    ratio to that variant's cubic). Worlds without a ceiling run keep NaN shares."""
    table = table.copy()
    for column in GAINS:
        table[column] = float("nan")
    test = table[table["split"] == "test"]
    rows = test[(test["variant"] == CEILING) & (test["method"] == "ensemble")]
    ceilings = {(row["world"], row["layer"]): row for _, row in rows.iterrows()}
    added = []
    for (world, variant, layer), group in test.groupby(["world", "variant", "layer"], sort=False):
        ceiling, cubic = ceilings.get((world, layer)), group[group["method"] == "cubic"]
        if ceiling is None or cubic.empty:
            continue
        cubic = cubic.iloc[0]
        for index, row in group.iterrows():
            table.loc[index, "gain_share"] = gain_share(cubic["ubrmse"], row["ubrmse"], ceiling["ubrmse"])
            table.loc[index, "within_gain_share"] = gain_share(cubic["within_rmse"], row["within_rmse"],
                                                               ceiling["within_rmse"])
        if variant != CEILING:
            added.append({**ceiling.to_dict(), "variant": variant, "part": cubic["part"], "method": CEILING,
                          "ratio_cubic": ceiling["ubrmse"] / cubic["ubrmse"], "weight": float("nan"),
                          "collapsed": False, "gain_share": 1.0, "within_gain_share": 1.0})
    if added:
        table = pd.concat([table, pd.DataFrame(added, columns=SKILL_COLUMNS)], ignore_index=True)
    return table[SKILL_COLUMNS]


def format_gains(table: pd.DataFrame) -> str:
    """The test split's ratio to cubic and shares of the reachable gain, per world x variant x layer x method."""
    sub = table[(table["split"] == "test") & table["gain_share"].notna()]
    if sub.empty:
        return ""
    lines = ["share of the reachable gain (test cells x days): (cubic - method) / (cubic - ceiling), ubRMSE and "
             "within-cell RMSE; ceiling: the members trained on the truth",
             f"  {'world':<22} {'variant':<24} {'layer':<8} {'method':<12} {'/cubic':>6} {'gain':>6} {'within':>6}"]
    for row in sub.itertuples():
        lines.append(f"  {row.world:<22} {row.variant:<24} {row.layer:<8} {row.method:<12} {row.ratio_cubic:>6.3f} "
                     f"{row.gain_share:>6.3f} {row.within_gain_share:>6.3f}")
    return "\n".join(lines)


def acceptance(table: pd.DataFrame, part: str = "untouched") -> list[dict]:
    """Issue 9's acceptance checks on the panel (split `all`), per layer; each a dict with check, layer, value,
    limit and ok (None where the methods it needs are missing):

    - ``ensemble/cubic``: median over the `part` worlds of ensemble ubRMSE / cubic ubRMSE <= 0.85;
    - ``ensemble < rf``: median ensemble ubRMSE below the random forest's;
    - ``anomaly r``: median ensemble within-cell anomaly r >= 0.55;
    - ``ensemble vs best member``: median ensemble ubRMSE <= 1.02 x the best member's median;
    - ``collapsed members``: members collapsed on any world of the panel (every part) = 0.
    """
    sub = table[table["split"] == "all"]
    med = panel_median(sub[sub["part"] == part])
    checks = []
    for layer in dict.fromkeys(sub["layer"]):
        get = _median_getter(med[med["layer"] == layer].set_index("method"))
        ens = get("ensemble", "ubrmse")
        best = float(np.nanmin([get(m, "ubrmse") for m in MEMBERS] + [np.inf]))
        best = best if np.isfinite(best) else float("nan")
        members = sub[(sub["layer"] == layer) & sub["method"].isin(MEMBERS)]
        for check, value, limit, ok in (
            ("ensemble/cubic", get("ensemble", "ratio_cubic"), 0.85, get("ensemble", "ratio_cubic") <= 0.85),
            ("ensemble < rf", ens / get(RF, "ubrmse"), 1.0, ens < get(RF, "ubrmse")),
            ("anomaly r", get("ensemble", "anomaly_r"), 0.55, get("ensemble", "anomaly_r") >= 0.55),
            ("ensemble vs best member", ens / best, 1.02, ens <= 1.02 * best),
            ("collapsed members", float(members["collapsed"].sum()), 0.0, not members["collapsed"].any()),
        ):
            known = np.isfinite(value)
            checks.append({"check": check, "layer": layer, "value": value, "limit": limit,
                           "ok": bool(ok) if known else None})
    return checks


def _median_getter(rows: pd.DataFrame):
    def get(method: str, key: str) -> float:
        return float(rows.loc[method, key]) if method in rows.index else float("nan")

    return get


def format_acceptance(checks: list[dict], part: str = "untouched") -> str:
    lines = [f"acceptance (issue 9), panel median over the {part} worlds; collapsed: any world"]
    for c in checks:
        verdict = "n/a " if c["ok"] is None else ("pass" if c["ok"] else "FAIL")
        lines.append(f"  {verdict}  {c['layer']:<8} {c['check']:<24} {c['value']:>7.3f}  (limit {c['limit']:g})")
    return "\n".join(lines)


# ---------------------------------------------------------------- printing


def format_table(table: pd.DataFrame) -> str:
    """The per-world table as fixed-width text (split `all`), a collapsed method marked."""
    head = (f"{'world':<22} {'part':<9} {'layer':<8} {'method':<9} {'ubRMSE':>7} {'/cubic':>6} {'anom r':>6} "
            f"{'std rat':>7} {'cell':>6} {'within':>6} {'weight':>6}")
    lines = [head]
    for row in table[table["split"] == "all"].itertuples():
        flag = "  COLLAPSED" if row.collapsed else ""
        lines.append(f"{row.world:<22} {row.part:<9} {row.layer:<8} {row.method:<9} {row.ubrmse:>7.4f} "
                     f"{row.ratio_cubic:>6.3f} {row.anomaly_r:>6.3f} {row.std_ratio:>7.3f} {row.cell_rmse:>6.4f} "
                     f"{row.within_rmse:>6.4f} {row.weight:>6.3f}{flag}")
    return "\n".join(lines)


def format_median(median: pd.DataFrame) -> str:
    lines = []
    for part in PARTS:
        sub = median[median["part"] == part]
        if sub.empty:
            continue
        lines.append(f"panel median, {part} worlds" + (" (settings never chosen on these)" if part == "untouched" else ""))
        lines.append(f"  {'layer':<8} {'method':<9} {'worlds':>6} {'ubRMSE':>7} {'/cubic':>6} {'anom r':>6} "
                     f"{'std rat':>7} {'cell':>6} {'within':>6} {'collapsed':>9}")
        for row in sub.itertuples():
            lines.append(f"  {row.layer:<8} {row.method:<9} {row.worlds:>6} {row.ubrmse:>7.4f} {row.ratio_cubic:>6.3f} "
                         f"{row.anomaly_r:>6.3f} {row.std_ratio:>7.3f} {row.cell_rmse:>6.4f} {row.within_rmse:>6.4f} "
                         f"{row.collapsed:>9}")
    return "\n".join(lines)


# ---------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `skill` subcommand's options."""
    parser.add_argument("--worlds", default="all",
                        help="tune, untouched, all (default) or comma-separated names: "
                             + ", ".join(w.name for w in WORLDS))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for every world (dotted key, YAML value), e.g. models.l2=0; repeatable")
    parser.add_argument("--cores", "--jobs", dest="cores", type=int, default=2, help="snakemake --cores (default 2)")
    parser.add_argument("--configfile", default=DEFAULT_CONFIG, help=f"base config (default {DEFAULT_CONFIG})")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"panel folder: <out>/<world>/ and <out>/skill.csv "
                                                           f"(default {DEFAULT_OUT})")
    parser.add_argument("--stations", default="world",
                        help="station variants, comma-separated: world (default: the world's own stations), sparse "
                             f"(about one per {SPARSE_CELLS} coarse cells), none; each in <out>/<world>__stations_<v>/")
    parser.add_argument("--ceiling", action="store_true",
                        help="also run each world with the members trained on its 30 m truth (samples.target truth, "
                             "no stations; <out>/<world>__ceiling/): the test split's ceiling and each method's share "
                             "of the reachable gain")
    parser.add_argument("--fresh", action="store_true", help="delete each world's results first (keeps its inputs)")
    parser.add_argument("--score-only", action="store_true", help="score the worlds' existing outputs, run nothing")


def run(args: argparse.Namespace) -> int:
    """Run and score the selected worlds; print the table and the medians; write <out>/skill.csv. Returns the
    exit status (1 when a world failed)."""
    worlds = select_worlds(args.worlds)
    overrides = parse_set(args.overrides)
    variants = [(stations, False) for stations in parse_stations(args.stations)] + ([("none", True)]
                                                                                 if args.ceiling else [])
    base_path = Path(args.configfile)
    base = yaml.safe_load(base_path.read_text()) if base_path.exists() else {}
    out = Path(args.out).resolve()
    configs = {(w.name, variant_name(*v)): world_config(base, w, overrides, *v)  # every config checked before any run
               for w in worlds for v in variants}
    rows, weightings, uncertainty, applicability, failed = [], [], [], [], []
    for world in worlds:
        for variant in (variant_name(*v) for v in variants):
            label, workdir = world.name + ("" if variant == DEFAULT_VARIANT else f" [{variant}]"), world_dir(
                out, world, variant)
            if not args.score_only:
                print(f"[{time.strftime('%H:%M:%S')}] {label} ({world.part}: {world.about}) -> {workdir}", flush=True)
                ok, seconds = run_world(world, configs[(world.name, variant)], workdir, args.cores, args.fresh)
                print(f"    {'done' if ok else 'FAILED'} in {seconds / 60:.1f} min (log {workdir / 'snakemake.log'})",
                      flush=True)
                if not ok:
                    failed.append(label)
                    continue
            try:
                counts = len(weightings), len(uncertainty)
                rows += [{**row, "variant": variant} for row in
                         score_world(world, workdir, configs[(world.name, variant)], weightings, uncertainty)]
                for row in weightings[counts[0]:] + uncertainty[counts[1]:]:
                    row["variant"] = variant
                applicability.append(applicability_rows(world, workdir, configs[(world.name, variant)], variant))
            except (OSError, ValueError, io.InputError) as err:
                print(f"    {label}: cannot score: {err}", flush=True)
                failed.append(label)
    table = with_ceiling(pd.DataFrame(rows, columns=[*COLUMNS, "variant"]))
    out.mkdir(parents=True, exist_ok=True)
    with io.atomic_path(out / "skill.csv") as tmp:
        table.assign(settings=" ".join(args.overrides)).to_csv(tmp, index=False, float_format="%.6g")
    for variant, part in table.groupby("variant", sort=False):
        print(f"\n=== variant {variant} ===\n" + format_table(part))
        print("\n" + format_median(panel_median(part)))
        collapsed = part[(part["split"] == "all") & part["collapsed"]]
        for row in collapsed.itertuples():
            print(f"COLLAPSED: {row.world} {row.layer} {row.method} (within-cell std ratio {row.std_ratio:.3f})")
        print("\n" + format_acceptance(acceptance(part)))
    if table["gain_share"].notna().any():
        print("\n" + format_gains(table))
    if weightings:
        study = pd.DataFrame(weightings, columns=[*WEIGHTING_COLUMNS[:2], "variant", *WEIGHTING_COLUMNS[2:]])
        with io.atomic_path(out / "weightings.csv") as tmp:
            study.to_csv(tmp, index=False, float_format="%.6g")
        for variant, part in study.groupby("variant", sort=False):
            print(f"\n[{variant}] " + format_weightings(part))
        print(f"wrote {out / 'weightings.csv'}")
    if uncertainty:
        spread_table = pd.DataFrame(uncertainty, columns=[*UNCERTAINTY_COLUMNS[:2], "variant", *UNCERTAINTY_COLUMNS[2:]])
        with io.atomic_path(out / "uncertainty.csv") as tmp:
            spread_table.to_csv(tmp, index=False, float_format="%.6g")
        for variant, part in spread_table.groupby("variant", sort=False):
            print(f"\n[{variant}] " + format_uncertainty(part))
        print(f"wrote {out / 'uncertainty.csv'}")
    found = [part for part in applicability if part is not None]
    if found:
        areas = pd.concat(found, ignore_index=True)
        with io.atomic_path(out / APPLICABILITY) as tmp:
            areas.to_csv(tmp, index=False, float_format="%.6g")
        print("\nThe area of applicability (test cells x days; medians over the worlds): the share of pixel-days "
              "outside it, and the ensemble's ubRMSE outside over inside\n"
              + applicability_summary(areas).to_string(float_format=lambda v: f"{v:.3f}"))
        print(f"wrote {out / APPLICABILITY}")
    print(f"\nwrote {out / 'skill.csv'} ({len(table)} rows; split 'test' = test cells x test dates)")
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m experiments.panel", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    raise SystemExit(run(parser.parse_args(argv)))


if __name__ == "__main__":
    main()

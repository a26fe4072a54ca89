"""Benchmarks of the workflow's heavy steps, run by hand: `python -m experiments.bench resample|predict [--configfile F]`.

predict: after a completed run, the two 30 m prediction jobs of one layer as the rules run them: `predict` (the deep
members and the random forest where it joins the ensemble, the correction, ensemble and spread, written) and
`predict_rf` (the random-forest peer alone, corrected, written: the rule where it does not join),
on the run's region and on a region 2 x 2 times larger (its predictors and coarse input tiled), each in its own
process: wall time, pixel-days per second and peak resident memory (RSS); then the time of each part of each job on
the run's region (reading with feature derivation, each member, the random forest, the coarse correction, the
ensemble and spread, writing), wall and CPU, and the largest difference of each output from the run's own file.

mosaic: after a completed run, one of its maps cut into tiles of one coarse cell (as predict writes them), then put
together as outputs.mosaic cog does it (a merge into one COG) and as vrt does it (a VRT over the tiles): the time of
each, and of reading the map through each, whole and in windows of 2 x 2 cells (a tiled step's read), with a check
that every read is bitwise the same.

samples: after a completed run, the training samples of one layer at one scale (30 m by default), on the run's
region and on a region 2 x 2 times larger, each in its own process: wall time and peak RSS.

resample: for each scale of the run (1000, 100, 50, 30 m by default) and a dynamic and a static predictor (the demo's
NDVI and DEM), the wall time of

- our resample step as the `resample` rule runs it (read, fill cloud gaps in time, GDAL cubic warp onto the nested
  grid, fill onto the daily dates, write), and of its bare warp (read, warp, write: the same work as gdalwarp);
- the equivalent `gdalwarp -r cubic` command on the same input to the same grid (the command is printed),

with the largest difference between our bare warp and gdalwarp's output (pixels finite in both) and the NaN shares
of the three outputs.
The demo world is generated into resources/<run> first when it is missing.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from experiments import panel
from smdown import config as smconfig
from smdown import contract as smcontract
from smdown import io
from smdown.grid import Grid, nest_factor, nested_grid
from smdown.learning.models import use_threads
from smdown.preparing import resample

DEFAULT_CONFIG = "config/config.yaml"


def ensure_inputs(config: dict) -> smconfig.Inputs:
    """The run's input files; the demo world is generated (and written under resources/<run>) when missing."""
    inputs = smconfig.inputs_of(config)
    missing = [p for p in [*inputs.coarse.values(), *inputs.predictors.values()] if not Path(p).exists()]
    if missing and smconfig.source_of(config) == "demo":
        from smdown.preparing.demo import make_world, write_world

        outdir = smconfig.resource_dir(config)
        print(f"generating the demo world into {outdir} ...", file=sys.stderr, flush=True)
        write_world(make_world(dict(config["demo"])), outdir)
    elif missing:
        raise SystemExit(f"input file(s) missing: {', '.join(missing)} (run the workflow's acquire rules first)")
    return inputs


def gdalwarp_command(source: str, output: str, grid: Grid, method: str = "cubic") -> list[str]:
    """The gdalwarp command equivalent to io.warp(source, grid, method) followed by io.write_stack."""
    left, bottom, right, top = grid.bounds
    return ["gdalwarp", "-q", "-overwrite", "-r", method, "-t_srs", grid.crs,
            "-te", repr(left), repr(bottom), repr(right), repr(top), "-ts", str(grid.width), str(grid.height),
            "-srcnodata", "nan", "-dstnodata", "nan", "-ot", "Float32",
            "-co", "COMPRESS=ZSTD", "-co", "ZSTD_LEVEL=1", "-co", "PREDICTOR=3", "-co", "TILED=YES", source, output]


def _timed(fn, *args, **kwargs):
    start = time.perf_counter()
    value = fn(*args, **kwargs)
    return time.perf_counter() - start, value


def _bare_warp(source: str, grid: Grid, static: bool, output: str) -> io.Stack:
    """Read, cubic warp, write: the work gdalwarp does."""
    stack = io.warp(io.read_stack(source, static=static), grid, "cubic")
    io.write_stack(output, stack)
    return stack


def bench_one(name: str, source: str, static: bool, coarse: str, scale: float, max_gap: int, workdir: Path) -> dict:
    """Time one variable onto one scale: our resample rule, our bare warp, and gdalwarp."""
    factor = nest_factor(io.read_grid(coarse).res, scale)
    grid = nested_grid(io.read_grid(coarse), factor)
    ours_path, warp_path, gdal_path = (str(workdir / f"{name}_{scale:g}_{kind}.tif") for kind in ("ours", "warp", "gdal"))
    # what the resample rule does (steps.resample_one without its logging)
    t_ours, _ = _timed(resample.resample_variable, source, coarse, factor, static, ours_path, max_gap_days=max_gap)
    stack = io.read_stack(ours_path, static=static)
    t_warp, warped = _timed(_bare_warp, source, grid, static, warp_path)
    command = gdalwarp_command(source, gdal_path, grid)
    row = {"scale": f"{scale:g} m", "variable": name, "factor": factor,
           "output": f"{stack.data.shape[0]} x {grid.height} x {grid.width}", "ours_s": t_ours, "warp_s": t_warp,
           "gdal_s": float("nan"), "max_diff": float("nan"), "nan_rule": 100 * float(np.mean(np.isnan(stack.data))),
           "nan_ours": 100 * float(np.mean(np.isnan(warped.data))),
           "nan_gdal": float("nan"), "command": " ".join(command)}
    if shutil.which("gdalwarp"):
        t_gdal, _ = _timed(subprocess.run, command, check=True)
        theirs = io.read_window(gdal_path, 0, 0, grid.height, grid.width)  # gdalwarp does not copy the band dates
        both = np.isfinite(warped.data) & np.isfinite(theirs)
        row.update(gdal_s=t_gdal, nan_gdal=100 * float(np.mean(np.isnan(theirs))),
                   max_diff=float(np.max(np.abs(warped.data[both] - theirs[both]))) if both.any() else float("nan"))
    for path in (ours_path, warp_path, gdal_path):
        Path(path).unlink(missing_ok=True)
    return row


def bench_resample(config: dict, variables: list[str], workdir: Path) -> list[dict]:
    """bench_one for every scale of the run (coarsest first) and every variable; prints each row as it comes."""
    inputs = ensure_inputs(config)
    unknown = [v for v in variables if v not in inputs.predictors]
    if unknown:
        raise SystemExit(f"unknown predictor(s) {unknown}; the run has {sorted(inputs.predictors)}")
    rows = []
    for scale in sorted(config["scales"], reverse=True):
        for name in variables:
            row = bench_one(name, inputs.predictors[name], name in inputs.static, inputs.coarse["surface"], scale,
                            config["fill"]["max_gap_days"], workdir)
            rows.append(row)
            print(_format_row(row), flush=True)
    return rows


HEADER = (f"{'scale':>7} {'variable':<9} {'factor':>6} {'output (bands x rows x cols)':>28} {'resample s':>10} "
          f"{'warp s':>8} {'gdalwarp s':>10} {'max |diff|':>10} {'NaN% rule':>9} {'NaN% warp':>9} {'NaN% gdal':>9}")


def _format_row(row: dict) -> str:
    return (f"{row['scale']:>7} {row['variable']:<9} {row['factor']:>6} {row['output']:>28} {row['ours_s']:>10.2f} "
            f"{row['warp_s']:>8.2f} {row['gdal_s']:>10.2f} {row['max_diff']:>10.2e} {row['nan_rule']:>9.2f} {row['nan_ours']:>9.2f} "
            f"{row['nan_gdal']:>9.2f}")


def _tile(path: str, out: str, reps: int, days: int | None = None) -> None:
    """A copy of a raster (its first `days` bands if dated) tiled reps x reps on a grid as many times larger."""
    stack = io.read_stack(path, static=not _has_dates(path))
    if stack.dates is not None and days:
        stack = io.Stack(stack.data[:days], stack.grid, stack.dates[:days])
    grid = Grid(stack.grid.crs, stack.grid.transform, stack.grid.height * reps, stack.grid.width * reps)
    io.write_stack(out, io.Stack(np.tile(stack.data, (1, reps, reps)), grid, stack.dates))


def _has_dates(path: str) -> bool:
    try:
        io.read_dates(path)
        return True
    except io.InputError:
        return False


def _feature_spec(config: dict):
    """The run's features, as the workflow derives them from its config (workflow/rules/common.smk)."""
    from smdown.preparing.features import spec_from_config

    inputs = smconfig.inputs_of(config)
    terrain = resample.terrain_names(config["derived"]["terrain"]) if "dem" in inputs.predictors else []
    return spec_from_config(config, inputs.dynamic, inputs.static + terrain)


def _layer_rasters(config: dict, layer: str, scale: str, names: list[str]) -> dict[str, str]:
    """A layer's predictor rasters at a scale, as the rules name them (its own variant where it has one)."""
    own = smconfig.inputs_of(config).layer_predictors.get(layer, {})
    return {n: f"results/{config['run']}/scales/{scale}/{smcontract.layer_variable(n, layer) if n in own else n}.tif"
            for n in names}


ANCHOR = "anchor"  # the smoothed anchor's raster among the rasters the bench tiles


def _with_anchor(config: dict, layer: str, rasters: dict[str, str]) -> dict[str, str]:
    """The rasters, and the one the predict rules take as the smoothed anchor (the coarse field's cubic interpolation
    at the finest scale) where config predict.anchor is smoothed."""
    if config["predict"]["anchor"] != "smoothed":
        return rasters
    scale = smconfig.scale_name(min(config["scales"]))
    return {**rasters, ANCHOR: f"results/{config['run']}/scales/{scale}/coarse_{layer}.tif"}


def _tiled(rasters: dict[str, str], coarse: str, workdir: str, reps: int, days: int,
           prepare: bool) -> tuple[dict[str, str], str]:
    """The rasters and the coarse input tiled reps x reps (first `days` days) under workdir, written when
    `prepare`; the files themselves for reps 1 and all days."""
    if reps == 1 and not days:
        return rasters, coarse
    tiled = {name: f"{workdir}/{name}.tif" for name in rasters}
    if prepare:
        for name, path in rasters.items():
            _tile(path, tiled[name], reps, days)
        _tile(coarse, f"{workdir}/coarse.tif", reps, days)
    return tiled, f"{workdir}/coarse.tif"


def _predict_inputs(config: dict, layer: str, names: list[str] | None = None, threads: int = 1):
    """What the predict rules get for one layer: members (`names`: all, the forest included, by default; the forest
    on `threads` cores), their features, finest-scale rasters, coarse input, weights."""
    from smdown.learning import models
    from smdown.preparing.features import FeatureSpec

    run = f"results/{config['run']}"
    names = names or [*config["models"]["members"], "rf"]
    paths = [str(models.model_path(f"{run}/models/{layer}", name)) for name in names]
    weights = f"{run}/ensemble/{layer}/weights.csv"
    missing = [p for p in [*paths, weights] if not Path(p).exists()]
    if missing:
        raise SystemExit(f"missing {', '.join(missing)}: complete the run first (snakemake --cores N)")
    members = {name: models.load_member(path, threads=threads) for name, path in zip(names, paths, strict=True)}
    spec = FeatureSpec.from_dict(members[names[0]].meta["spec"])
    rasters = _layer_rasters(config, layer, smconfig.scale_name(min(config["scales"])), spec.rasters)
    return members, spec, rasters, smconfig.inputs_of(config).coarse[layer], weights


# the rules predict and predict_rf; product: predict as a run that writes the product alone (outputs.maps auto on a
# region of your own) runs it, writing the ensemble and its spread but no member's map
JOBS = ("predict", "rf", "product")
JOB_TITLES = {"predict": "predict (the members, correction, ensemble, spread)", "rf": "predict_rf",
              "product": "predict writing the product alone (the ensemble and its spread)"}


def _predict_child(config: dict, layer: str, workdir: str, reps: int, days: int, threads: int,
                   reference: str = "", overlap: bool = True, job: str = "predict", correction: str = "") -> dict:
    """One predict job as its rule runs it (`job`: "predict", the members of the ensemble (config ensemble.forest
    says whether the forest is one), the ensemble and spread; "rf", the random forest alone; "product", as "predict"
    but writing the ensemble and its spread alone, as a run that writes the product does), timed part by part,
    and the largest difference of each output from the same file in `reference` (a folder of outputs of the same
    job, e.g. kept by an earlier bench), or for the run region from the run's own file (its ensemble_raw where
    the stations refined the ensemble). `correction`: instead of the config's."""
    import resource

    import pandas as pd

    from smdown.mapping.blocks import predict_layer

    names = ["rf"] if job == "rf" else _ensemble_members(config)
    if job != "rf":
        use_threads(threads)
    members, spec, rasters, coarse, weights_path = _predict_inputs(config, layer, names, threads)
    rasters, coarse = _tiled(_with_anchor(config, layer, rasters), coarse, workdir, reps, days, prepare=False)
    anchor = rasters.pop(ANCHOR, None)
    member_weights = {}
    if job != "rf":
        table = pd.read_csv(weights_path)
        member_weights = {row.member: float(row.weight) for row in table.itertuples() if row.member in members}
    factor = nest_factor(io.read_grid(coarse).res, float(min(config["scales"])))
    combined = [] if job == "rf" else ["ensemble", "ensemble_std"]
    written = combined if job == "product" else [*members, *combined]
    outputs = {name: f"{workdir}/out_{name}.tif" for name in written}
    settings = config["predict"]
    timings: dict[str, list[float]] = {}
    start, cpu = time.perf_counter(), time.process_time()
    predict_layer(members, member_weights, spec, rasters, coarse, factor, outputs, block_cells=settings["block_cells"],
                  correction=correction or settings["correction"], valid_range=tuple(settings["valid_range"]),
                  timings=timings, overlap=overlap, anchor=anchor, threads=threads)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    first = next(iter(outputs.values()))
    grid, n_days = io.read_grid(first), len(io.read_dates(first))
    reference = reference or (f"results/{config['run']}/downscaled/{layer}" if reps == 1 and not days else "")
    references = {name: Path(f"{reference}/{_predicted(reference, name)}.tif") for name in outputs} if reference else {}
    diffs = {name: _max_diff(path, str(references[name])) for name, path in outputs.items()
             if name in references and references[name].exists()}
    return {"pixels": grid.height * grid.width, "days": n_days, "seconds": seconds, "cpu": cpu, "rss_mb": rss,
            "parts": timings, "max_diff": diffs, "threads": threads}


def _ensemble_members(config: dict) -> list[str]:
    """The members the rule predict runs: the deep ones, and the forest where it joins the ensemble."""
    return [*config["models"]["members"], *(["rf"] if config["ensemble"]["forest"] else [])]


def _predicted(folder: str, name: str) -> str:
    """The name under which a run keeps what predict wrote as `name`: its ensemble is ensemble_raw where the stations
    refined it afterwards (common.smk: predicted)."""
    return "ensemble_raw" if name == "ensemble" and Path(f"{folder}/ensemble_raw.tif").exists() else name


def _max_diff(a: str, b: str, rows: int = 300) -> float:
    """Largest |a - b| of two rasters on the same grid, read in strips; inf where their NaN differ."""
    grid = io.read_grid(a)
    worst = 0.0
    for row in range(0, grid.height, rows):
        height = min(rows, grid.height - row)
        x, y = io.read_window(a, row, 0, height, grid.width), io.read_window(b, row, 0, height, grid.width)
        if x.shape != y.shape or not np.array_equal(np.isnan(x), np.isnan(y)):
            return float("inf")
        if np.isfinite(x).any():
            worst = max(worst, float(np.nanmax(np.abs(x - y))))
    return worst


def _samples_child(config: dict, layer: str, scale: str, workdir: str, reps: int, days: int) -> dict:
    """The samples job of one layer at one scale (split first), as the rules run them."""
    import resource

    from smdown.preparing import prepare_steps as sampling

    spec = _feature_spec(config)
    rasters = _layer_rasters(config, layer, scale, spec.rasters)
    rasters, coarse = _tiled(rasters, smconfig.inputs_of(config).coarse[layer], workdir, reps, days, prepare=False)
    start = time.perf_counter()
    split = f"{workdir}/split.json"
    sampling.split([coarse], split, smconfig.split_settings(config), config["seed"])
    sampling.samples(rasters, coarse, split, coarse, scale, f"{workdir}/samples.npz", spec.to_dict(),
                     smconfig.sample_settings(config), config["seed"])
    seconds = time.perf_counter() - start
    grid = io.read_grid(rasters[next(iter(rasters))])
    return {"pixels": grid.height * grid.width, "days": len(io.read_dates(coarse)), "seconds": seconds,
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _child(step: str, config_path: str, layer: str, workdir: str, reps: int, days: int, scale: str,
           prepare: bool = False, threads: int = 2, reference: str = "", overlap: bool = True, job: str = "predict",
           correction: str = "") -> None:
    """Run in a fresh process: write the tiled inputs (prepare), or run one step on them and print its figures as
    JSON (so the time and the peak RSS hold that step alone)."""
    import json

    config = smconfig.load(config_path) if Path(config_path).exists() else smconfig.validate({})
    if step == "predict":
        scale = smconfig.scale_name(min(config["scales"]))
    if prepare:
        names = _predict_inputs(config, layer)[1].rasters if step == "predict" else _feature_spec(config).rasters
        rasters = _layer_rasters(config, layer, scale, names)
        rasters = _with_anchor(config, layer, rasters) if step == "predict" else rasters
        _tiled(rasters, smconfig.inputs_of(config).coarse[layer], workdir, reps, days, prepare=True)
        return
    if step == "predict":
        row = _predict_child(config, layer, workdir, reps, days, threads, reference, overlap, job, correction)
    else:
        row = _samples_child(config, layer, scale, workdir, reps, days)
    print(json.dumps(row))


def _in_child(step: str, config_path: str, layer: str, workdir: str, reps: int, days: int, scale: str = "",
              prepare: bool = False, threads: int = 2, reference: str = "", overlap: bool = True, job: str = "predict",
              correction: str = "") -> dict | None:
    import json

    child = [sys.executable, "-m", "experiments.bench", "_child", step, config_path, layer, workdir, str(reps), str(days),
             scale or "-", str(threads), "prepare" if prepare else "run" if overlap else "sequential", reference, job,
             correction or "-"]
    done = subprocess.run(child, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    return None if prepare else json.loads(done.stdout.strip().splitlines()[-1])


REGION_HEADER = (f"{'region':>12} {'pixels':>10} {'days':>5} {'pixel-days':>12} {'seconds':>8} {'pixel-days/s':>13} "
                 f"{'peak RSS MB':>12}")


def _region_line(label: str, row: dict) -> str:
    pixel_days = row["pixels"] * row["days"]
    return (f"{label:>12} {row['pixels']:>10} {row['days']:>5} {pixel_days:>12} {row['seconds']:>8.1f} "
            f"{pixel_days / row['seconds']:>13.0f} {row['rss_mb']:>12.0f}")


def bench_samples(config_path: str, layer: str, scale: str) -> None:
    """The samples step on the run region and on a 2 x 2 tiled region, each in a fresh process."""
    print(REGION_HEADER)
    for reps in (1, 2):
        with tempfile.TemporaryDirectory(prefix="smdown-bench-") as tmp:
            _in_child("samples", config_path, layer, tmp, reps, 0, scale, prepare=True)
            row = _in_child("samples", config_path, layer, tmp, reps, 0, scale)
        print(_region_line("run region" if reps == 1 else f"{reps * reps}x region", row), flush=True)


def bench_predict(config_path: str, layer: str, days: int, repeat: int, sizes: list[int], threads: int,
                  keep: str = "", compare: str = "", sequential: bool = False, jobs: tuple[str, ...] = JOBS,
                  correction: str = "") -> None:
    """Each predict job (`jobs`: "predict", the members with the ensemble; "rf", the forest's own job) on the
    run region tiled N x N for each N of `sizes`, `repeat` times each in a fresh process: medians of the wall and
    CPU time, of each part's, and of the peak RSS. `keep`: a folder to copy the first region's outputs to;
    `compare`: a folder of such outputs to compare the first region's with; `correction`: instead of the config's."""
    mode = "sequential (no overlap of reading and writing)" if sequential else "reading and writing overlapped"
    print(f"layer {layer}, {threads} threads, {mode}, correction {correction or 'as configured'}: medians of "
          f"{repeat} run(s), each in a fresh process", flush=True)
    firsts = {}
    for job in jobs:
        print(f"\njob {JOB_TITLES[job]}", flush=True)
        print(REGION_HEADER, flush=True)
        for reps in sizes:
            with tempfile.TemporaryDirectory(prefix="smdown-bench-") as tmp:
                _in_child("predict", config_path, layer, tmp, reps, days, prepare=True)
                reference = str(Path(compare).resolve()) if compare and job not in firsts else ""
                rows = [_in_child("predict", config_path, layer, tmp, reps, days, threads=threads, reference=reference,
                                  overlap=not sequential, job=job, correction=correction) for _ in range(repeat)]
                if keep and job not in firsts:
                    Path(keep).mkdir(parents=True, exist_ok=True)
                    for out in Path(tmp).glob("out_*.tif"):
                        shutil.copyfile(out, Path(keep) / f"{out.name.removeprefix('out_')}")
            row = dict(rows[0], seconds=float(np.median([r["seconds"] for r in rows])),
                       cpu=float(np.median([r["cpu"] for r in rows])),
                       rss_mb=float(np.median([r["rss_mb"] for r in rows])),
                       parts={p: np.median([r["parts"].get(p, [0.0, 0.0]) for r in rows], axis=0).tolist()
                              for p in rows[0]["parts"]})
            label = "run region" if reps == 1 else f"{reps * reps}x region"
            each = ", ".join(f"{r['seconds']:.1f}" for r in rows)
            print(_region_line(label, row) + f"   (each run: {each} s)", flush=True)
            firsts.setdefault(job, (label, row))
    for job, (label, row) in firsts.items():
        pixel_days = row["pixels"] * row["days"]
        print(f"\n{JOB_TITLES[job]}: parts on the {label} ({pixel_days} pixel-days): "
              f"wall seconds, the process's CPU seconds in them (all threads), and the pixel-days/s each part alone "
              f"would allow, from its wall time and from its CPU time spread over {threads} cores (what an idle "
              f"machine would give)", flush=True)
        print(f"{'part':<12} {'wall s':>8} {'share %':>8} {'CPU s':>8} {'px-days/s wall':>15} {'px-days/s CPU':>14}")
        lines = [(part, wall, cpu) for part, (wall, cpu) in row["parts"].items()]
        for part, wall, cpu in [*lines, ("whole job", row["seconds"], row["cpu"])]:
            print(f"{part:<12} {wall:>8.2f} {100 * wall / row['seconds']:>8.1f} {cpu:>8.2f} "
                  f"{pixel_days / max(wall, 1e-9):>15.0f} {pixel_days * threads / max(cpu, 1e-9):>14.0f}")
        if row["max_diff"]:
            print(f"largest |difference| from {compare or 'the run'}'s outputs: "
                  + ", ".join(f"{name} {diff:.2e}" for name, diff in row["max_diff"].items()), flush=True)


def _read_windows(path: str, windows: list[tuple[int, int, int, int]]) -> list[np.ndarray]:
    return [io.read_window(path, *window) for window in windows]


def bench_mosaic(map_path: str, repeat: int) -> None:
    """A map cut into one-cell tiles, merged into a COG and put under a VRT; reads through each (medians of `repeat`)."""
    from smdown.grid import tiles as tiles_of

    stack = io.read_stack(map_path)
    cell = stack.grid.height // io.read_grid(smconfig.inputs_of(smconfig.load(DEFAULT_CONFIG)).coarse["surface"]).height
    cells = (stack.grid.height // cell, stack.grid.width // cell)
    with tempfile.TemporaryDirectory(prefix="smdown-bench-") as tmp:
        parts = []
        for tile in tiles_of(cells, 1):
            row, col, height, width = tile.fine(cell)
            parts.append(f"{tmp}/tiles/{tile.name}.tif")
            io.write_stack(parts[-1], io.Stack(stack.data[:, row : row + height, col : col + width],
                                               stack.grid.window(row, col, height, width), stack.dates))
        made = {"cog": lambda: io.merge(parts, f"{tmp}/map.tif", cog=True, threads=2),
                "vrt": lambda: io.write_mosaic_vrt(parts, f"{tmp}/map.vrt")}
        windows = [t.fine(cell) for t in tiles_of(cells, 2)]
        print(f"{map_path}: {stack.grid.height} x {stack.grid.width} pixels x {len(stack.dates)} days, "
              f"{len(parts)} tiles of one cell; medians of {repeat}")
        print("| mosaic | put together s | read whole s | read 2 x 2-cell windows s | bitwise equal |")
        print("|---|---|---|---|---|")
        for name, make in made.items():
            path = f"{tmp}/map.{'tif' if name == 'cog' else 'vrt'}"
            build = float(np.median([_timed(make)[0] for _ in range(repeat)]))
            read_s, whole = zip(*[_timed(io.read_stack, path) for _ in range(repeat)], strict=True)
            window_s, pieces = zip(*[_timed(_read_windows, path, windows) for _ in range(repeat)], strict=True)
            same = np.array_equal(whole[0].data, stack.data, equal_nan=True) and all(
                np.array_equal(piece, stack.data[:, r : r + h, c : c + w], equal_nan=True)
                for piece, (r, c, h, w) in zip(pieces[0], windows, strict=True))
            print(f"| {name} | {build:.2f} | {np.median(read_s):.2f} | {np.median(window_s):.2f} | {same} |")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_child":
        step, config_path, layer, workdir, reps, days, scale, threads, mode, reference, job, correction = argv[1:]
        _child(step, config_path, layer, workdir, int(reps), int(days), scale, mode == "prepare", int(threads),
               reference, mode != "sequential", job, "" if correction == "-" else correction)
        return
    parser = argparse.ArgumentParser(prog="python -m experiments.bench", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    resample_cmd = commands.add_parser("resample", help="our resample step beside gdalwarp -r cubic, per scale")
    resample_cmd.add_argument("--configfile", default=DEFAULT_CONFIG, help=f"run config (default {DEFAULT_CONFIG})")
    resample_cmd.add_argument("--variables", nargs="+", default=["ndvi", "dem"],
                              help="predictors to resample (default: ndvi dem)")
    predict_cmd = commands.add_parser("predict", help="30 m prediction: time and peak memory, run region and 4x")
    predict_cmd.add_argument("--configfile", default=DEFAULT_CONFIG, help=f"run config (default {DEFAULT_CONFIG})")
    predict_cmd.add_argument("--layer", default="surface", help="layer to predict (default surface)")
    predict_cmd.add_argument("--days", type=int, default=0, help="only the first N days (0: all)")
    predict_cmd.add_argument("--repeat", type=int, default=1, help="runs per region; medians shown (default 1)")
    predict_cmd.add_argument("--sizes", type=int, nargs="+", default=[1, 2],
                             help="regions: the run's region tiled N x N, for each N (default: 1 2)")
    predict_cmd.add_argument("--threads", type=int, default=2, help="threads of the job (default 2, as the rule)")
    predict_cmd.add_argument("--sequential", action="store_true",
                             help="read and write in the main thread, not beside the prediction: each part's CPU "
                                  "time is then its own")
    predict_cmd.add_argument("--keep", default="", help="folder to copy the first region's outputs to")
    predict_cmd.add_argument("--compare", default="",
                             help="folder of outputs (from --keep) to compare the first region's with")
    predict_cmd.add_argument("--jobs", nargs="+", choices=JOBS, default=list(JOBS),
                             help="jobs to time: predict (the members, ensemble, spread), rf (rule predict_rf) and/or "
                                  "product (predict writing the ensemble and its spread alone)")
    predict_cmd.add_argument("--correction", default="", choices=["", "none", "additive", "smooth"],
                             help="coarse correction instead of the config's")
    samples_cmd = commands.add_parser("samples", help="training samples at one scale: time and peak memory, run region and 4x")
    samples_cmd.add_argument("--configfile", default=DEFAULT_CONFIG, help=f"run config (default {DEFAULT_CONFIG})")
    samples_cmd.add_argument("--layer", default="surface", help="layer (default surface)")
    samples_cmd.add_argument("--scale", default="30", help="training scale in metres (default 30)")
    mosaic_cmd = commands.add_parser("mosaic", help="a map's tiles merged into a COG or put under a VRT, and read")
    mosaic_cmd.add_argument("--map", default="results/demo/downscaled/surface/ensemble.tif",
                            help="a map of a completed run (default the demo's surface ensemble)")
    mosaic_cmd.add_argument("--repeat", type=int, default=3, help="runs of each; medians shown (default 3)")
    skill_cmd = commands.add_parser("skill", help="skill panel: the workflow on demo worlds, scored against 30 m truth")
    panel.add_arguments(skill_cmd)
    args = parser.parse_args(argv)
    if args.command == "skill":
        raise SystemExit(panel.run(args))
    if args.command == "predict":
        bench_predict(args.configfile, args.layer, args.days, args.repeat, args.sizes, args.threads, args.keep,
                      args.compare, args.sequential, tuple(args.jobs), args.correction)
        return
    if args.command == "samples":
        bench_samples(args.configfile, args.layer, args.scale)
        return
    if args.command == "mosaic":
        bench_mosaic(args.map, args.repeat)
        return

    path = Path(args.configfile)
    config = smconfig.load(path) if path.exists() or args.configfile != DEFAULT_CONFIG else smconfig.validate({})
    print(f"run {config['run']}: coarse {smconfig.inputs_of(config).coarse['surface']}", flush=True)
    print("resample s = the resample rule's work (read, fill in time, cubic warp, daily dates, write); "
          "warp s = read, cubic warp, write (gdalwarp's work); max |diff| = our warp vs gdalwarp", flush=True)
    print(HEADER, flush=True)
    with tempfile.TemporaryDirectory(prefix="smdown-bench-") as tmp:
        rows = bench_resample(config, args.variables, Path(tmp))
    if not shutil.which("gdalwarp"):
        print("gdalwarp not found (install GDAL's command-line tools, e.g. apt-get install gdal-bin)")
    print("\ngdalwarp commands (outputs in a temporary directory):")
    for row in rows:
        print(f"  {row['scale']:>7} {row['variable']}: {row['command']}")


if __name__ == "__main__":
    main()

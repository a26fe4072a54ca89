"""Benchmarks of the workflow's heavy steps, run by hand: `python -m smdown.bench resample|predict [--configfile F]`.

predict: after a completed run, the 30 m prediction of one layer (all members, ensemble, spread) on the
run's region and on a region 2 x 2 times larger (its predictors and coarse input tiled), each in its own
process: wall time, pixel-days per second and peak resident memory (RSS).

samples: after a completed run, the training samples of one layer at one scale (30 m by default), on the run's
region and on a region 2 x 2 times larger, each in its own process: wall time and peak RSS.

resample: for each scale of the run (1000, 100, 50, 30 m by default) and a dynamic and a static predictor (the demo's
NDVI and DEM), the wall time of

- our resample step as the `resample` rule runs it (read, fill cloud gaps in time, GDAL cubic warp onto the nested
  grid, fill onto the daily dates, write), and of its bare warp (read, warp, write: the same work as gdalwarp);
- the equivalent `gdalwarp -r cubic` command on the same input to the same grid (the command is printed),

with the largest difference between our bare warp and gdalwarp's output (pixels finite in both) and the NaN shares
of the three outputs.
The demo world is generated into resources/demo first when it is missing.
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

from smdown import config as smconfig
from smdown import io, panel, resample
from smdown.grid import Grid, nest_factor, nested_grid

DEFAULT_CONFIG = "config/config.yaml"


def ensure_inputs(config: dict) -> smconfig.Inputs:
    """The run's input files; the demo world is generated (and written under resources/demo) when missing."""
    inputs = smconfig.inputs_of(config)
    missing = [p for p in [*inputs.coarse.values(), *inputs.predictors.values()] if not Path(p).exists()]
    if missing and smconfig.source_of(config) == "demo":
        from smdown.demo import make_world, write_world

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
            "-co", "COMPRESS=DEFLATE", "-co", "PREDICTOR=3", "-co", "TILED=YES", source, output]


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


def _tiled_inputs(config: dict, layer: str, scale: str, workdir: str, reps: int, days: int,
                  prepare: bool) -> tuple[dict[str, str], str]:
    """The predictor rasters of `scale` and the layer's coarse input, tiled reps x reps under workdir
    (written when `prepare`), or the run's own files for reps 1 and all days."""
    from smdown import steps

    spec = steps.feature_spec(config)
    run = f"results/{config['run']}"
    rasters = {name: f"{run}/scales/{scale}/{name}.tif" for name in spec.rasters}
    coarse = smconfig.inputs_of(config).coarse[layer]
    if reps == 1 and not days:
        return rasters, coarse
    tiled = {name: f"{workdir}/{name}.tif" for name in rasters}
    if prepare:
        for name, path in rasters.items():
            _tile(path, tiled[name], reps, days)
        _tile(coarse, f"{workdir}/coarse.tif", reps, days)
    return tiled, f"{workdir}/coarse.tif"


def _child(step: str, config_path: str, layer: str, workdir: str, reps: int, days: int, scale: str,
           prepare: bool = False) -> None:
    """Run in a fresh process: write the tiled inputs (prepare), or run one step on them and print the time and
    the peak RSS (so the measure holds that step alone)."""
    import json
    import resource

    from smdown import steps

    config = smconfig.load(config_path) if Path(config_path).exists() else smconfig.validate({})
    if step == "predict":
        scale = smconfig.scale_name(min(config["scales"]))
    rasters, coarse = _tiled_inputs(config, layer, scale, workdir, reps, days, prepare)
    if prepare:
        return
    run = f"results/{config['run']}"
    start = time.perf_counter()
    if step == "predict":
        members = config["models"]["members"]
        model_paths = [f"{run}/models/{layer}/{m}.keras" for m in members] + [f"{run}/models/{layer}/rf.joblib"]
        outputs = {name: f"{workdir}/out_{name}.tif" for name in [*members, "rf", "ensemble", "ensemble_std"]}
        steps.predict(model_paths, f"{run}/ensemble/{layer}/weights.csv", rasters, coarse, scale, outputs, config)
        grid, days = io.read_grid(outputs["ensemble"]), len(io.read_dates(outputs["ensemble"]))
    else:
        split = f"{workdir}/split.json"
        steps.split([coarse], split, config)
        steps.samples(rasters, coarse, split, coarse, scale, f"{workdir}/samples.npz", config, 0)
        grid, days = io.read_grid(rasters[next(iter(rasters))]), len(io.read_dates(coarse))
    seconds = time.perf_counter() - start
    print(json.dumps({"pixels": grid.height * grid.width, "days": days, "seconds": seconds,
                      "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def bench_step(step: str, config_path: str, layer: str, days: int, scale: str = "") -> None:
    """One step (predict or samples) on the run region and on a 2 x 2 tiled region, each in a fresh process."""
    import json

    print(f"{'region':>12} {'pixels':>10} {'days':>5} {'pixel-days':>12} {'seconds':>8} {'pixel-days/s':>13} "
          f"{'peak RSS MB':>12}")
    for reps in (1, 2):
        with tempfile.TemporaryDirectory(prefix="smdown-bench-") as tmp:
            child = [sys.executable, "-m", "smdown.bench", "_child", step, config_path, layer, tmp, str(reps),
                     str(days), scale]
            subprocess.run([*child, "prepare"], capture_output=True, text=True, check=True)
            done = subprocess.run(child, capture_output=True, text=True)
            if done.returncode:
                raise SystemExit(done.stderr[-3000:])
            row = json.loads(done.stdout.strip().splitlines()[-1])
        pixel_days = row["pixels"] * row["days"]
        label = "run region" if reps == 1 else f"{reps * reps}x region"
        print(f"{label:>12} {row['pixels']:>10} {row['days']:>5} {pixel_days:>12} {row['seconds']:>8.1f} "
              f"{pixel_days / row['seconds']:>13.0f} {row['rss_mb']:>12.0f}", flush=True)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_child":
        _child(argv[1], argv[2], argv[3], argv[4], int(argv[5]), int(argv[6]), argv[7], prepare=argv[8:] == ["prepare"])
        return
    parser = argparse.ArgumentParser(prog="python -m smdown.bench", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    resample_cmd = commands.add_parser("resample", help="our resample step beside gdalwarp -r cubic, per scale")
    resample_cmd.add_argument("--configfile", default=DEFAULT_CONFIG, help=f"run config (default {DEFAULT_CONFIG})")
    resample_cmd.add_argument("--variables", nargs="+", default=["ndvi", "dem"],
                              help="predictors to resample (default: ndvi dem)")
    predict_cmd = commands.add_parser("predict", help="30 m prediction: time and peak memory, run region and 4x")
    predict_cmd.add_argument("--configfile", default=DEFAULT_CONFIG, help=f"run config (default {DEFAULT_CONFIG})")
    predict_cmd.add_argument("--layer", default="surface", help="layer to predict (default surface)")
    predict_cmd.add_argument("--days", type=int, default=0, help="only the first N days (0: all)")
    samples_cmd = commands.add_parser("samples", help="training samples at one scale: time and peak memory, run region and 4x")
    samples_cmd.add_argument("--configfile", default=DEFAULT_CONFIG, help=f"run config (default {DEFAULT_CONFIG})")
    samples_cmd.add_argument("--layer", default="surface", help="layer (default surface)")
    samples_cmd.add_argument("--scale", default="30", help="training scale in metres (default 30)")
    skill_cmd = commands.add_parser("skill", help="skill panel: the workflow on demo worlds, scored against 30 m truth")
    panel.add_arguments(skill_cmd)
    args = parser.parse_args(argv)
    if args.command == "skill":
        raise SystemExit(panel.run(args))
    if args.command == "predict":
        bench_step("predict", args.configfile, args.layer, args.days)
        return
    if args.command == "samples":
        bench_step("samples", args.configfile, args.layer, 0, args.scale)
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

"""A finished run's measured jobs against the projection's lines (smdown.resources): for each rule, the CPU seconds of
its jobs (Snakemake's benchmark files) beside what MODELS gives for the same job's size, and their ratio.

    python -m experiments.lines RUN_FOLDER --rows 10 --cols 8 --days 40 [--tile-cells 2] [--scale 30]

The sizes are those `workflow/rules/common.smk` gives each job (job_size): a tile's pixel-days at the finest scale
for the tiled steps (with the cells around it for refine), a scale's pixel-days for the whole-region resample, the region's for a merge, the cells the
samples' bags fall in for samples. A region of `rows` x `cols` 9 km cells over `days` days, tiles of `tile_cells`
cells (their edges cut at the region's)."""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import pandas as pd

from smdown import io
from smdown import resources as res
from smdown.grid import tiles


def job_work(run: Path, rule: str, parts: tuple[str, ...], region: res.Region, fine: float, tile_pixel_days: dict,
             bags: int, tile_cells_of: dict) -> tuple[str, float] | None:
    """(the MODELS line, the job's work) of one benchmark file of the finished run `run`, from its rule and the parts
    of its path."""
    if rule == "refine":
        tile = tile_cells_of[parts[-1]]
        return rule, region.halo_pixel_days(fine, tile.row, tile.col, tile.rows, tile.cols, res.REFINE_HALO)
    if rule in ("predict", "uncertainty", "cubic_baseline", "evaluate_tile"):
        return ("predict_forest" if rule == "predict" else rule), tile_pixel_days[parts[-1]]
    if rule == "resample" and len(parts) == 3:  # resample_tile: resample/<finest>/<var>/<tile>
        return "resample", tile_pixel_days[parts[-1]]
    if rule == "resample":  # one variable at one scale, whole: its pixels times its bands (1 for a static one)
        scale, var = parts
        size = None if scale == "coarse" else float(scale)
        return "resample", region.pixels(size) * io.band_count(run / "scales" / scale / f"{var}.tif")
    if rule in ("merge_tiles", "merge_scale"):
        return "merge_tiles", region.pixel_days(fine)
    if rule == "samples":
        scale = parts[-1]
        return "samples", region.visited_pixel_days(None if scale == "coarse" else float(scale), bags)
    return None


def compare(run: Path, region: res.Region, tile_cells: int, fine: float, bags: int) -> pd.DataFrame:
    tile_cells_of = {t.name: t for t in tiles((region.rows, region.cols), tile_cells)}
    tile_pixel_days = {name: t.rows * t.cols * region.cell_pixel_days(fine) for name, t in tile_cells_of.items()}
    rows = []
    for path in sorted((run / "benchmarks").rglob("*.tsv")):
        parts = path.relative_to(run / "benchmarks").with_suffix("").parts
        sized = job_work(run, parts[0], parts[1:], region, fine, tile_pixel_days, bags, tile_cells_of)
        if sized is None:
            continue
        line, work = sized
        measured = pd.read_csv(path, sep="\t")["cpu_time"].iloc[-1]
        rule = "resample_tile" if parts[0] == "resample" and len(parts) == 4 else parts[0]
        rows.append({"rule": rule, "line": line, "work": work, "measured_cpu_s": measured,
                     "projected_cpu_s": res.MODELS[line].cpu_s(work)})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m experiments.lines", description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="results/<run> of a finished run")
    parser.add_argument("--rows", type=int, required=True, help="coarse cells down the region")
    parser.add_argument("--cols", type=int, required=True, help="coarse cells across the region")
    parser.add_argument("--days", type=int, required=True)
    parser.add_argument("--tile-cells", type=int, default=2, help="config tiles.cells (0: one tile)")
    parser.add_argument("--scale", type=float, default=30.0, help="the finest scale, m")
    parser.add_argument("--bags", type=int, default=375, help="samples.per_scale / samples.bag_size")
    args = parser.parse_args(argv)
    region = res.Region(args.rows, args.cols, 9000.0, args.days)
    table = compare(args.run, region, args.tile_cells, args.scale, args.bags)
    print("| rule | jobs | work a job | measured CPU s a job (median) | projected | measured / projected |")
    print("|---|---|---|---|---|---|")
    for (rule, work), group in table.groupby(["rule", "work"], sort=False):
        measured, projected = statistics.median(group["measured_cpu_s"]), float(group["projected_cpu_s"].iloc[0])
        print(f"| {rule} | {len(group)} | {work:.3g} | {measured:.2f} | {projected:.2f} | {measured / projected:.2f} |")


if __name__ == "__main__":
    main()

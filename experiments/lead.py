"""How long a time chunk's lead-in must be (config chunks.lead_days), measured: `python -m experiments.lead`.

After a completed run (the demo by default), one layer's predict job over a tile of coarse cells, as the rule runs it,
first over the whole record (the run's period, or `--repeat` times its period one after the other, a record long
enough to hold the lead-ins), then from `lead` days before a chunk's first day only (the daily rasters, the coarse
input and the anchor cut to those days, as a chunk's jobs read them), for each lead. Printed: the largest and the
root-mean-square difference of each map (the members, the ensemble) on the chunk's days from the whole period's,
and the pixel-days each lead predicts. The antecedent precipitation index and the LSTM carry a memory of the days
before the chunk; the other members see each day alone.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from experiments.bench import ANCHOR, DEFAULT_CONFIG, _ensemble_members, _predict_inputs, _with_anchor
from smdown import config as smconfig
from smdown import io
from smdown.grid import nest_factor
from smdown.learning.models import use_threads
from smdown.mapping.blocks import predict_layer
from smdown.preparing import temporal


def cut(path: str, first: int, target: Path, repeat: int) -> str:
    """A dated raster repeated `repeat` times in time (a longer record, its dates running on), from its band `first`
    on; a static one as it is."""
    if io.bands_of_dates(path, []) is None:
        return path
    stack = io.read_stack(path)
    start = dt.date.fromisoformat(stack.dates[0])
    span = (dt.date.fromisoformat(stack.dates[-1]) - start).days + 1
    dates = [(dt.date.fromisoformat(d) + dt.timedelta(days=span * k)).isoformat()
             for k in range(repeat) for d in stack.dates]
    data = np.concatenate([stack.data] * repeat)
    io.write_stack(target, io.Stack(data[first:], stack.grid, dates[first:]))
    return str(target)


def predict_from(config: dict, layer: str, first: int, tile: list[int], folder: Path, threads: int,
                 repeat: int, carry_from: int | None = None) -> dict:
    """The layer's maps over `tile`, predicted from day index `first` of the record on (the run's period repeated
    `repeat` times): name -> (days, rows, cols). `carry_from`: the antecedent precipitation indices carried into that
    day of the record (as rule api_state carries them from chunk to chunk), not restarted from zero."""
    names = _ensemble_members(config)
    members, spec, rasters, coarse, weights_path = _predict_inputs(config, layer, names, threads)
    rasters = _with_anchor(config, layer, rasters)
    folder.mkdir(parents=True, exist_ok=True)
    rasters = {name: cut(path, first, folder / f"{name}.tif", repeat) for name, path in rasters.items()}
    coarse = cut(coarse, first, folder / "coarse.tif", repeat)
    anchor = rasters.pop(ANCHOR, None)
    api_start = None
    if carry_from is not None and spec.api_decay and "precipitation" in spec.dynamic:
        whole = cut(rasters_whole(config, layer, spec)["precipitation"], 0, folder / "whole_precipitation.tif", repeat)
        before = io.read_stack(whole)
        states = [temporal.antecedent_state(before.data[:carry_from], decay,
                                            np.zeros(before.data.shape[1:], np.float32)) for decay in spec.api_decay]
        io.write_stack(folder / "api_state.tif", io.Stack(np.stack(states), before.grid, None))
        api_start = (str(folder / "api_state.tif"), before.dates[carry_from])
    table = pd.read_csv(weights_path)
    weights = {row.member: float(row.weight) for row in table.itertuples() if row.member in members}
    outputs = {name: str(folder / f"out_{name}.tif") for name in [*members, "ensemble"]}
    settings = config["predict"]
    factor = nest_factor(io.read_grid(coarse).res, float(min(config["scales"])))
    predict_layer(members, weights, spec, rasters, coarse, factor, outputs, block_cells=settings["block_cells"],
                  correction=settings["correction"], valid_range=tuple(settings["valid_range"]), anchor=anchor,
                  tile=_tile(tile), threads=threads, api_start=api_start)
    return {name: io.read_stack(path).data for name, path in outputs.items()}


def rasters_whole(config: dict, layer: str, spec) -> dict[str, str]:
    from experiments.bench import _layer_rasters

    return _layer_rasters(config, layer, smconfig.scale_name(min(config["scales"])), spec.rasters)


def _tile(tile: list[int]):
    from smdown.grid import Tile

    return Tile(*tile)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configfile", default=DEFAULT_CONFIG)
    parser.add_argument("--layer", default="surface")
    parser.add_argument("--chunk-start", type=int, default=28, help="the chunk's first day (index in the period)")
    parser.add_argument("--leads", type=int, nargs="+", default=[0, 7, 14, 28])
    parser.add_argument("--tile", type=int, nargs=4, default=[0, 0, 2, 2],
                        help="first row, first col, rows, cols of the coarse cells predicted")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--carry", action="store_true",
                        help="carry the antecedent precipitation indices into the chunk (rule api_state), as the "
                        "workflow does, instead of restarting them at the lead-in's first day")
    parser.add_argument("--repeat", type=int, default=1,
                        help="the period repeated this many times in time: a record long enough for the lead-ins")
    args = parser.parse_args(argv)
    config = smconfig.load(args.configfile)
    use_threads(args.threads)
    start = args.chunk_start
    with tempfile.TemporaryDirectory() as tmp:
        whole = predict_from(config, args.layer, 0, args.tile, Path(tmp) / "whole", args.threads, args.repeat)
        rows = []
        for lead in sorted(args.leads):
            first = max(0, start - lead)
            maps = predict_from(config, args.layer, first, args.tile, Path(tmp) / f"lead{lead}", args.threads,
                                args.repeat, start if args.carry else None)
            for name, data in maps.items():
                ours, theirs = data[start - first:], whole[name][start:]
                diff = np.abs(ours - theirs)[np.isfinite(ours) & np.isfinite(theirs)]
                rows.append({"lead_days": lead, "map": name, "max_abs": float(diff.max()),
                             "rms": float(np.sqrt(np.mean(diff**2))), "days_predicted": data.shape[0],
                             "chunk_days": data.shape[0] - (start - first)})
    table = pd.DataFrame(rows)
    print(f"{args.layer}, chunk from day {start} of the record (the period x {args.repeat}), tile {args.tile}, "
          f"indices {'carried' if args.carry else 'restarted'}: difference from the whole record")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2e}"))


if __name__ == "__main__":
    main()

"""Tiles: the fine-scale work of one region as one job per tile of coarse cells, merged into the region's maps. A
tiled prediction (members, forest, ensemble, spread, cubic baselines) merged equals the whole region's, bitwise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from conftest import PREDICT_SETTINGS, UTM, grid_around, make_dates

from mapping.test_blocks import DATES, _Forest, _member, _smooth_world
from smdown import io
from smdown.evaluating.evaluate_steps import cubic_baselines
from smdown.grid import Tile, nested_grid, tiles
from smdown.learning import models
from smdown.mapping.blocks import predict_layer
from smdown.preparing import resample
from smdown.preparing.features import FeatureSpec


def test_tiles_cover_the_region_once_row_by_row_smaller_at_the_far_edges():
    found = tiles((3, 5), 2)
    assert [t.name for t in found] == ["r0c0", "r0c2", "r0c4", "r2c0", "r2c2", "r2c4"]
    assert [(t.rows, t.cols) for t in found] == [(2, 2), (2, 2), (2, 1), (1, 2), (1, 2), (1, 1)]
    covered = np.zeros((3, 5), int)
    for t in found:
        covered[t.row : t.row + t.rows, t.col : t.col + t.cols] += 1
    assert (covered == 1).all()
    assert tiles((3, 5), 0) == [Tile(0, 0, 3, 5)]
    assert Tile(2, 4, 1, 1).fine(300) == (600, 1200, 300, 300)
    with pytest.raises(ValueError, match="tile_cells"):
        tiles((3, 5), -1)


@pytest.mark.parametrize("anchored", [False, True])
def test_tiled_prediction_merged_equals_the_whole_region_bitwise(tmp_path, anchored):
    rasters, coarse_path, coarse, factor = _smooth_world(tmp_path)  # 3 x 4 cells, factor 4, a NaN pixel
    anchor = None
    if anchored:
        values = 0.2 + 0.1 * np.random.default_rng(3).random((coarse.shape[0], 12, 16)).astype(np.float32)
        anchor = str(tmp_path / "anchor.tif")
        io.write_stack(anchor, io.Stack(values, io.read_grid(rasters["x1"]), io.read_dates(rasters["x1"])))
    spec = FeatureSpec(("x1",), ("x0",), (), False)
    members = {"dnn": _member("dnn", seed=1), "cnn": _member("cnn", seed=2), "lstm": _member("lstm", seed=3),
               "rf": models.Member("rf", _Forest(), {})}
    weights = {"dnn": 0.5, "cnn": 0.25, "lstm": 0.25}
    names = ["dnn", "cnn", "lstm", "rf", "ensemble", "ensemble_std"]

    def run(tile: Tile | None, folder: str) -> dict[str, str]:
        outputs = {name: str(tmp_path / folder / f"{name}.tif") for name in names}
        _predict_layer(members, weights, spec, rasters, coarse_path, factor, outputs, anchor=anchor, tile=tile)
        return outputs

    whole = run(None, "whole")
    parts = [run(tile, tile.name) for tile in tiles((3, 4), 2)]  # 2 x 2 cells: 2 tiles on 3 rows, the last 1 row
    assert io.read_grid(parts[2]["dnn"]).shape == (4, 8)
    for name in names:
        merged = str(tmp_path / f"merged_{name}.tif")
        grid = io.merge([part[name] for part in parts], merged, max_pixel_days=50)  # a few bands at a time
        assert grid == io.read_grid(whole[name])
        assert io.read_dates(merged) == io.read_dates(whole[name])
        np.testing.assert_array_equal(io.read_stack(merged).data, io.read_stack(whole[name]).data, err_msg=name)
    assert np.isnan(io.read_stack(merged).data[1, 5, 9])  # the NaN predictor pixel stays NaN


def test_tiled_cubic_baselines_merged_equal_the_whole_region(tmp_path):
    _, coarse_path, coarse, factor = _smooth_world(tmp_path)
    cubic = 0.2 + 0.1 * np.random.default_rng(4).random((coarse.shape[0], 12, 16)).astype(np.float32)
    source = str(tmp_path / "cubic_in.tif")
    io.write_stack(source, io.Stack(cubic, nested_grid(io.read_grid(coarse_path), factor), DATES[:4]))
    def run(anchor, tile, folder):
        outputs = {name: str(tmp_path / anchor / folder / f"{name}.tif") for name in ("cubic", "cubic_corrected")}
        cubic_baselines(source, coarse_path, outputs, "additive", 1, anchor, tile)
        return outputs

    for anchor in ("coarse", "smoothed"):
        whole = run(anchor, None, "whole")
        parts = [run(anchor, [t.row, t.col, t.rows, t.cols], t.name) for t in tiles((3, 4), 2)]
        for name in ("cubic", "cubic_corrected"):
            merged = str(tmp_path / anchor / f"{name}.tif")
            io.merge([part[name] for part in parts], merged)
            np.testing.assert_array_equal(io.read_stack(merged).data, io.read_stack(whole[name]).data)
        np.testing.assert_array_equal(io.read_stack(whole["cubic"]).data, cubic)


def test_merge_writes_a_tiled_compressed_raster_strip_by_strip_and_refuses_gaps_and_strangers(tmp_path):
    fine = nested_grid(io.read_grid(_smooth_world(tmp_path)[1]), 100)  # 300 x 400 pixels: two strips of 256 rows
    values = np.random.default_rng(1).random((3, 300, 400)).astype(np.float32)
    parts = []
    for t in tiles((3, 4), 2):
        row, col, height, width = t.fine(100)
        parts.append(str(tmp_path / f"{t.name}.tif"))
        io.write_stack(parts[-1], io.Stack(values[:, row : row + height, col : col + width],
                                           fine.window(row, col, height, width), DATES[:3]))
    out = str(tmp_path / "merged.tif")
    io.merge(parts, out, max_pixel_days=256 * 400)  # one band a strip
    np.testing.assert_array_equal(io.read_stack(out).data, values)
    with rasterio.open(out) as src:
        assert src.profile["tiled"] and src.profile["compress"] == "zstd" and src.block_shapes[0] == (256, 256)
    with pytest.raises(ValueError, match="gaps or overlap"):
        io.merge(parts[:-1], str(tmp_path / "gap.tif"))
    stranger = str(tmp_path / "stranger.tif")
    io.write_stack(stranger, io.Stack(values[:, :100, :100], fine.window(0, 0, 100, 100), DATES[1:4]))
    with pytest.raises(ValueError, match="stranger.tif: not a tile of the same grid and dates"):
        io.merge([*parts, stranger], str(tmp_path / "bad.tif"))
    assert not (tmp_path / "gap.tif").exists() and not (tmp_path / "bad.tif").exists()


def test_tiles_of_a_daily_variable_resampled_and_merged_equal_one_tile(tmp_path, coarse_grid, write_raster):
    """The finest scale's daily variables (rule resample_tile): any tiling gives the same bits (one cell a block)."""
    src_grid = grid_around(coarse_grid, UTM, 250.0, 2000.0)
    rng = np.random.default_rng(2)
    data = rng.random((3, *src_grid.shape)).astype(np.float32)
    data[1, :, : src_grid.width // 2] = np.nan  # a cloud filled in time
    src = write_raster("ndvi.tif", data, src_grid, ["2023-05-01", "2023-05-04", "2023-05-07"])
    coarse = write_raster("coarse.tif", np.zeros((8, 2, 2)), coarse_grid, make_dates("2023-05-01", 8))
    whole = str(tmp_path / "whole.tif")
    resample.resample_variable(str(src), str(coarse), 9, False, whole, max_gap_days=7, tile=Tile(0, 0, 2, 2))
    parts = []
    for tile in tiles((2, 2), 1):
        parts.append(str(tmp_path / f"{tile.name}.tif"))
        resample.resample_variable(str(src), str(coarse), 9, False, parts[-1], max_gap_days=7, tile=tile)
    merged = str(tmp_path / "merged.tif")
    io.merge(parts, merged)
    assert io.read_dates(merged) == make_dates("2023-05-01", 8)
    assert np.isfinite(io.read_stack(merged).data).mean() > 0.9
    np.testing.assert_array_equal(io.read_stack(merged).data, io.read_stack(whole).data)


def test_merge_of_one_tile_copies_it_and_rewrites_a_stranger_layout(tmp_path):
    """One tile covering the region (tiles.cells 0): merge_tiles copies its bytes; a tile laid out otherwise (here
    DEFLATE, untiled) is rewritten as open_writer writes every map."""
    fine = nested_grid(io.read_grid(_smooth_world(tmp_path)[1]), 100)  # 300 x 400 pixels
    values = np.random.default_rng(3).random((2, 300, 400)).astype(np.float32)
    values[1, 7, 9] = np.nan
    part = str(tmp_path / "r0c0.tif")
    io.write_stack(part, io.Stack(values, fine, DATES[:2]))
    out = str(tmp_path / "merged.tif")
    assert io.merge([part], out) == fine
    assert Path(out).read_bytes() == Path(part).read_bytes()
    assert io.read_dates(out) == DATES[:2]
    stranger, out2 = str(tmp_path / "deflate.tif"), str(tmp_path / "merged2.tif")
    with rasterio.open(stranger, "w", driver="GTiff", dtype="float32", nodata=np.nan, crs=fine.crs,
                       transform=fine.transform, height=300, width=400, count=2, compress="deflate") as dst:
        dst.write(values)
        dst.descriptions = tuple(DATES[:2])
    io.merge([stranger], out2)
    np.testing.assert_array_equal(io.read_stack(out2).data, values)
    assert io.read_dates(out2) == DATES[:2]
    with rasterio.open(out2) as src:
        assert src.profile["compress"] == "zstd" and src.block_shapes[0] == (256, 256)


def _predict_layer(*args, **settings):
    """predict_layer with the schema's defaults of config predict where a test does not set them."""
    return predict_layer(*args, **{**PREDICT_SETTINGS, **settings})


def test_a_mosaic_vrt_over_the_tiles_reads_as_their_merge_and_refuses_gaps(tmp_path):
    """The tiled steps read a region's map or predictor through a VRT over its tiles (rules mosaic, mosaic_scale):
    its values, dates, grid and windows across the tiles' edges equal the merged raster's, bitwise."""
    fine = nested_grid(io.read_grid(_smooth_world(tmp_path)[1]), 100)  # 300 x 400 pixels
    values = np.random.default_rng(5).random((3, 300, 400)).astype(np.float32)
    values[1, 150, 250] = np.nan
    parts = []
    for t in tiles((3, 4), 2):
        row, col, height, width = t.fine(100)
        parts.append(str(tmp_path / "tiles" / f"{t.name}.tif"))
        io.write_stack(parts[-1], io.Stack(values[:, row : row + height, col : col + width],
                                           fine.window(row, col, height, width), DATES[:3]))
    vrt = tmp_path / "mosaics" / "map.vrt"
    assert io.write_mosaic_vrt(parts, vrt) == fine
    read = io.read_stack(vrt)
    assert read.grid == fine and read.dates == DATES[:3]
    np.testing.assert_array_equal(read.data, values)
    with rasterio.open(vrt) as src:
        across = src.read(window=rasterio.windows.Window(150, 150, 150, 100))  # over four tiles' corners
    np.testing.assert_array_equal(across, values[:, 150:250, 150:300])
    moved = tmp_path / "moved"
    moved.mkdir()
    for folder in ("tiles", "mosaics"):
        (tmp_path / folder).rename(moved / folder)
    np.testing.assert_array_equal(io.read_stack(moved / "mosaics" / "map.vrt").data, values)  # sources relative
    with pytest.raises(ValueError, match="gaps or overlap"):
        io.write_mosaic_vrt([str(moved / "tiles" / Path(p).name) for p in parts[:-1]], tmp_path / "gap.vrt")
    assert not (tmp_path / "gap.vrt").exists()

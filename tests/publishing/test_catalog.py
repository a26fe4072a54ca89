"""The STAC catalogue: one item per map with its days and projection, hrefs relative to it, valid offline; and the
choice of the maps a run writes."""

import json

import numpy as np
import pystac
import pytest
from conftest import make_dates

from smdown import io
from smdown.publishing.catalog import OfflineValidator, build_catalog, validate
from smdown.publishing.publish_steps import written_maps


@pytest.fixture
def run(tmp_path, coarse_grid):
    dates = make_dates("2023-05-01", 6)
    maps = {}
    for layer in ("surface", "rootzone"):
        for name in ("ensemble", "uncertainty"):
            path = tmp_path / "downscaled" / layer / f"{name}.tif"
            path.parent.mkdir(parents=True, exist_ok=True)
            io.write_stack(path, io.Stack(np.full((6, *coarse_grid.shape), 0.25, np.float32), coarse_grid, dates))
            maps.setdefault(layer, {})[name] = path
    cube = tmp_path / "cube" / "surface.nc"
    cube.parent.mkdir()
    cube.write_bytes(b"")
    build_catalog(maps, {"surface": cube}, tmp_path / "stac", "tiny")
    return tmp_path, dates


def test_each_map_is_an_item_with_its_days_projection_and_relative_href(run, coarse_grid):
    folder, dates = run
    assert validate(folder / "stac" / "collection.json") == 4
    collection = pystac.read_file(str(folder / "stac" / "collection.json"))
    item = collection.get_item("rootzone-uncertainty", recursive=True)
    assert item.properties["start_datetime"] == f"{dates[0]}T00:00:00Z"
    assert item.properties["end_datetime"] == f"{dates[-1]}T23:59:59Z"
    assert item.properties["proj:code"] == "EPSG:6933"
    assert item.properties["proj:shape"] == list(coarse_grid.shape)
    assert item.properties["proj:transform"] == list(coarse_grid.transform)[:6]
    asset = item.assets["uncertainty"]
    assert asset.href == "../../downscaled/rootzone/uncertainty.tif" and asset.media_type == pystac.MediaType.COG
    assert asset.get_absolute_href() == str(folder / "downscaled" / "rootzone" / "uncertainty.tif")
    west, south, east, north = item.bbox
    assert west < -120.55 < east and south < 37.25 < north
    assert collection.assets["surface-cube"].href == "../cube/surface.nc"


def test_an_invalid_item_fails_validation(run):
    folder, _ = run
    path = folder / "stac" / "surface-ensemble" / "surface-ensemble.json"
    item = json.loads(path.read_text())
    item["properties"]["proj:shape"] = "many"
    path.write_text(json.dumps(item))
    with pytest.raises(pystac.errors.STACValidationError):
        validate(folder / "stac" / "collection.json")


def test_a_schema_without_a_local_copy_is_an_error_not_a_download():
    with pytest.raises(pystac.errors.STACValidationError, match="no local copy"):
        OfflineValidator()._get_schema("https://stac-extensions.github.io/eo/v1.1.0/schema.json")


def test_written_maps_follow_outputs_maps():
    run_maps = ["dnn", "cnn", "lstm", "ensemble_raw", "ensemble", "ensemble_std", "rf", "cubic", "cubic_corrected",
                "uncertainty"]
    members = ["dnn", "cnn", "lstm"]
    assert written_maps("auto", run_maps, members, own_region=True) == ["ensemble", "uncertainty"]
    assert written_maps("auto", run_maps, members, own_region=False) == run_maps
    assert written_maps("all", run_maps, members, own_region=True) == run_maps
    assert written_maps(["product", "members"], run_maps, members, own_region=True) == [
        "dnn", "cnn", "lstm", "ensemble", "rf", "uncertainty"]
    assert written_maps(["spread", "baselines"], run_maps, members, True) == ["ensemble_std", "cubic", "cubic_corrected"]
    with pytest.raises(ValueError, match="outputs.maps"):
        written_maps(["ensemble_raw"], [m for m in run_maps if m != "ensemble_raw"], members, True)

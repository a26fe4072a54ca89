"""End to end with `source: earthdata`: the workflow acquires 16 days of every source from fixtures served on
127.0.0.1 (Earthdata Login + CMR + SPL4SMGP granules, a STAC API with Sentinel-2, Copernicus DEM and Sentinel-1
COGs, SoilGrids, ISMN files), then runs every rule on the acquired contract files at tiny scales.

The acquire rules run inside Snakemake (a subprocess), so the fixture server lives for the whole module and
the Earthdata credentials reach the workflow through the environment.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import TINY_SETTINGS, run_workflow

from smdown.acquire.region import coarse_grid, fine_grid, make_region
from smdown.io import read_grid, read_stack

from .conftest import BBOX, PASSWORD, PC_KEY, USER, add_ismn, add_smap, add_soilgrids, add_stac, serving

START = "2023-05-01"
DAYS = [(dt.date.fromisoformat(START) + dt.timedelta(days=k)).isoformat() for k in range(16)]
SCENES = DAYS[::5]  # Sentinel-1 and -2 every 5 days
RUN = "acquired"
LAYERS = ("surface", "rootzone")

pytestmark = pytest.mark.workflow


def season_values(shape: tuple[int, int]):
    """SMAP values that vary between cells (wetter north-east) and days (a rain pulse every 5 days, drying)."""
    rows, cols = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    pattern = 0.02 * cols / max(shape[1] - 1, 1) + 0.02 * (shape[0] - 1 - rows) / max(shape[0] - 1, 1)

    def values(day: int, hour: int) -> dict:
        since_rain = day % 5
        return {"surface": 0.16 + pattern + 0.08 * 0.7 ** since_rain + 0.001 * hour,
                "rootzone": 0.24 + pattern / 2 + 0.03 * 0.9 ** since_rain,
                "precipitation": np.full(shape, 2e-4 if since_rain == 0 else 1e-6)}

    return values


def season_config(url: str, ismn: str) -> dict:
    return {
        "run": RUN,
        "source": "earthdata",
        "acquire": {
            "bbox": BBOX, "start": DAYS[0], "end": DAYS[-1],  # cache_dir: the default, under resources/
            "http": {"retries": 2, "backoff": 0.01, "timeout": 10},
            "earthdata": {"login": "environment", "edl_url": url, "cmr_url": f"{url}/search/"},
            "sentinel2": {"catalog": f"{url}/stac/", "res": 1000, "block": 16},
            "dem": {"catalog": f"{url}/stac/", "res": 1000, "block": 16},
            "soil": {"url": url + "/soilgrids/{property}/{property}_{depth}_mean.tif", "res": 1000},
            "sentinel1": {"enabled": True, "catalog": f"{url}/stac/", "res": 1000, "block": 16,
                          "sign": "planetary_computer", "token_url": f"{url}/sas/token"},
            "ismn": {"path": ismn},
        },
        "scales": [3000, 1000],  # the acquired rasters' 1000 m grid is the finest scale
        **TINY_SETTINGS,
        # the tuning is tested on the tiny run; here it would add six jobs (about 2 minutes of CI) to a test of
        # the acquired files
        "tune": {**TINY_SETTINGS.get("tune", {}), "enabled": False},
        # one tile (2 x 4 cells): tiles are tested on the tiny run; here the extra jobs would cost CI about a minute
        "tiles": {"cells": 4},
    }


@pytest.fixture(scope="module")
def acquired_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("acquired")
    region = make_region(BBOX, DAYS[0], DAYS[-1])
    with serving(workdir / "www") as server:
        add_smap(server, region, days=DAYS, values=season_values(coarse_grid(region).shape), fill_cell=False)
        add_stac(server, region, s1_token=True, season=SCENES)
        add_soilgrids(server)
        ismn = add_ismn(workdir / "ismn", days=DAYS)
        credentials = {"EARTHDATA_USERNAME": USER, "EARTHDATA_PASSWORD": PASSWORD, "EARTHDATA_TOKEN": "",
                       "PC_SDK_SUBSCRIPTION_KEY": PC_KEY}
        # a whole run on a machine shared with other work can take longer than run_workflow's default 600 s
        run_workflow(workdir, season_config(server.url, str(ismn)), env=credentials, timeout=2400)
        again = run_workflow(workdir, None, "-n", env=credentials)
        yield workdir, region, server, again


def test_acquired_contract_files_feed_the_workflow(acquired_run):
    workdir, region, server, again = acquired_run
    resources = workdir / "resources" / RUN
    for name in ("coarse_surface", "coarse_rootzone", "precipitation", "ndvi", "ndwi", "dem", "sand", "clay",
                 "sand_rootzone", "clay_rootzone", "s1_vv", "s1_vh"):
        assert (resources / f"{name}.tif").exists(), name
    assert read_stack(resources / "coarse_surface.tif").dates == DAYS
    assert read_stack(resources / "ndvi.tif").dates == SCENES
    # downloads are cached under resources/, nothing half-written; a dry rerun has nothing to do
    cache = workdir / "resources" / "acquire" / "cache"
    assert list((cache / "smap" / "subsets").rglob("*.npz"))
    assert not list((workdir / "resources").rglob("*.part"))
    assert "Nothing to be done" in again.stdout + again.stderr
    # every SMAP granule was subset once on the server (OPeNDAP), with the Earthdata token; no whole granule
    gets = [r for r in server.requests if r["path"].startswith("/opendap/") and r["method"] == "GET"]
    assert len({r["path"] for r in gets}) == len(gets) == 2 * len(DAYS)
    assert not [r for r in server.requests if r["path"].startswith(("/smap/", "/smap-ecs/"))]


def test_maps_on_the_acquired_grid_average_back_to_their_anchor(acquired_run):
    workdir, region, _, _ = acquired_run
    results = workdir / "results" / RUN
    fine = fine_grid(coarse_grid(region), 1000)
    for layer in LAYERS:
        ensemble = read_stack(results / "downscaled" / layer / "ensemble.tif")
        assert ensemble.grid == fine and ensemble.dates == DAYS
        assert np.isfinite(ensemble.data).mean() > 0.95
        assert read_grid(results / "downscaled" / layer / "ensemble_std.tif") == fine
    metrics = pd.read_csv(results / "evaluation" / "metrics.csv")
    assert set(metrics["reference"]) == {"coarse", "stations"}  # no truth for real data
    # the correction pins the ensemble's and the corrected cubic's cell means to the same anchor (by default the cell
    # means of SMAP's cubic interpolation), so both are equally far from SMAP itself, and not far
    coarse = metrics[metrics["reference"] == "coarse"].set_index(["layer", "method"])["rmse"]
    for layer in LAYERS:
        assert abs(coarse[layer, "ensemble"] - coarse[layer, "cubic_corrected"]) < 1e-3, coarse
        assert coarse[layer, "ensemble"] < 0.05, coarse
    stations = metrics[(metrics["reference"] == "stations") & (metrics["method"] == "ensemble")]
    assert (stations["n"] > 0).all() and len(stations) == 2


def test_each_layer_learns_from_texture_at_its_depth(acquired_run):
    workdir, _, _, _ = acquired_run
    samples = workdir / "results" / RUN / "samples"
    # SoilGrids fixture: sand 400 g/kg at 0-5 cm, 499.5 g/kg thickness-weighted over 0-100 cm (in %)
    for layer, sand in (("surface", 40.0), ("rootzone", 49.95)):
        drawn = np.load(samples / layer / "3000.npz")
        names = [str(f) for f in drawn["features"]]
        assert {"s1_vv", "s1_vh", "ndvi", "sand", "clay", "slope"} <= set(names)
        np.testing.assert_allclose(drawn["pixel"][:, names.index("sand")], sand, atol=1e-3)
    importance = pd.read_csv(workdir / "results" / RUN / "sensitivity" / "rootzone" / "importance.csv")
    assert {"sand", "clay", "s1_vv"} <= set(importance["feature"])


ACQUIRE_RULES = ("acquire_smap", "acquire_sentinel2", "acquire_dem", "acquire_soil", "acquire_sentinel1", "acquire_ismn")


def _dry_run_with(workdir, change) -> str:
    """The jobs a dry run schedules after `change(config)`; the run's config file is restored afterwards."""
    configfile = workdir / "config.yaml"
    original = configfile.read_text()
    config = yaml.safe_load(original)
    change(config)
    try:
        done = run_workflow(workdir, config, "-n")
    finally:
        configfile.write_text(original)
    return done.stdout + done.stderr


def _scheduled(out: str) -> set[str]:
    return {rule for rule in ACQUIRE_RULES if f"rule {rule}:" in out or f"localrule {rule}:" in out}


def test_a_changed_bbox_reruns_the_acquire_jobs(acquired_run):
    workdir = acquired_run[0]
    out = _dry_run_with(workdir, lambda c: c["acquire"].update(bbox=[BBOX[0] - 0.05, *BBOX[1:]]))
    assert _scheduled(out) == set(ACQUIRE_RULES), out[-3000:]
    assert "Params have changed" in out


def test_a_source_setting_reruns_only_that_source(acquired_run):
    workdir = acquired_run[0]
    out = _dry_run_with(workdir, lambda c: c["acquire"]["sentinel2"].update(max_cloud=50))
    assert _scheduled(out) == {"acquire_sentinel2"}, out[-3000:]

"""Real STAC items (tests/data/real/stac, recorded Earth Search and Planetary Computer answers; see its README):
the assets, scaling, dates and hrefs smdown takes from them, and a search served on 127.0.0.1 returning them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pystac
import pytest

from smdown.acquire.http import Downloader
from smdown.acquire.remote import gdal_path
from smdown.acquire.sentinel2 import ASSET_KEYS, band_scaling, check_collection_gaps, offset_in_pixels
from smdown.acquire.stac import asset_href, by_date, item_date, search_items
from smdown.io import InputError

STAC = Path(__file__).resolve().parents[1] / "data" / "real" / "stac"
ES_C1 = "earth_search_sentinel-2-c1-l2a_S2B_T20EPT_20250731T131905_L2A.json"
ES_L2A = "earth_search_sentinel-2-l2a_S2B_20EPT_20250731_0_L2A.json"
ES_L2A_2023 = "earth_search_sentinel-2-l2a_S2A_13TDE_20231008_0_L2A.json"
PC_L2A = "planetary_computer_sentinel-2-l2a_S2A_MSIL2A_20190101T000001_R116_T60VUK_20201007T214652.json"
DEM = "earth_search_cop-dem-glo-30_Copernicus_DSM_COG_10_S90_00_W180_00_DEM.json"


def item(name: str) -> pystac.Item:
    return pystac.Item.from_dict(json.loads((STAC / name).read_text()))


@pytest.mark.parametrize("name, keys, date, baseline, offset, nodata", [
    (ES_C1, ("red", "nir", "swir16", "scl"), "2025-07-31", "05.11", -0.1, 0),
    (ES_L2A, ("red", "nir", "swir16", "scl"), "2025-07-31", "05.11", -0.1, 0),
    (ES_L2A_2023, ("red", "nir", "swir16", "scl"), "2023-10-08", "05.09", -0.1, 0),
    (PC_L2A, ("B04", "B08", "B11", "SCL"), "2019-01-01", "02.12", 0.0, None),
])
def test_sentinel2_items_as_the_catalogues_write_them(name, keys, date, baseline, offset, nodata):
    it = item(name)
    assert item_date(it) == date and it.properties["s2:processing_baseline"] == baseline
    found = {band: asset_href(it, ASSET_KEYS[band]) for band in ("red", "nir", "swir16", "scl")}
    names = [href.rsplit("/", 1)[-1] for href, _ in found.values()]
    if name == PC_L2A:
        assert names == [f"T60VUK_20190101T000001_{b}.tif" for b in ("B04_10m", "B08_10m", "B11_20m", "SCL_20m")]
    else:
        assert names == ["B04.tif", "B08.tif", "B11.tif", "SCL.tif"]
    assert found["nir"][1].extra_fields["eo:bands"][0]["center_wavelength"] == 0.842  # B08, not nir08/B8A at 0.865
    for band in ("red", "nir", "swir16"):
        assert band_scaling(it, found[band][1]) == (pytest.approx(1e-4), offset, nodata)
    assert [k for k in keys if k in it.assets] == list(keys)


def test_earth_search_l2a_says_applied_yet_lists_the_offset():
    """The recorded sentinel-2-l2a item says earthsearch:boa_offset_applied: true and its raster:bands still carry
    offset -0.1: which one holds is for the pixels to say (offset_in_pixels), not the flag."""
    it = item(ES_L2A)
    assert it.properties["earthsearch:boa_offset_applied"] is True
    assert it.assets["red"].extra_fields["raster:bands"][0]["offset"] == -0.1
    land = np.ones((10, 10), dtype=bool)
    raw = {"red": np.full((10, 10), 1300 * 1e-4 - 0.1), "nir": np.full((10, 10), 4000 * 1e-4 - 0.1)}
    applied = {"red": np.full((10, 10), 300 * 1e-4 - 0.1), "nir": np.full((10, 10), 3000 * 1e-4 - 0.1)}
    assert offset_in_pixels(raw, land) is False and offset_in_pixels(applied, land) is True
    assert offset_in_pixels(applied, np.zeros((10, 10), dtype=bool)) is None


def test_the_collection_1_gap_is_where_the_other_collection_has_items():
    """The Planetary Computer's sentinel-2-l2a holds an item on 2019-01-01, inside the gap of Earth Search's
    sentinel-2-c1-l2a; the recorded c1 item (2025-07-31) lies outside it."""
    day = item_date(item(PC_L2A))
    with pytest.raises(InputError, match="inside a gap of sentinel-2-c1-l2a.*collection: sentinel-2-l2a"):
        check_collection_gaps("sentinel-2-c1-l2a", day, day)
    check_collection_gaps("sentinel-2-l2a", day, day)
    day = item_date(item(ES_C1))
    check_collection_gaps("sentinel-2-c1-l2a", day, day)


def test_copernicus_dem_item_href_is_read_over_https():
    it = item(DEM)
    href, asset = asset_href(it, ["data"])
    assert href == ("s3://copernicus-dem-30m/Copernicus_DSM_COG_10_S90_00_W180_00_DEM/"
                    "Copernicus_DSM_COG_10_S90_00_W180_00_DEM.tif")
    assert gdal_path(href) == ("/vsicurl/https://copernicus-dem-30m.s3.amazonaws.com/"
                               "Copernicus_DSM_COG_10_S90_00_W180_00_DEM/Copernicus_DSM_COG_10_S90_00_W180_00_DEM.tif")
    assert it.bbox == pytest.approx([-180.0013888888889, -89.99986111111112, -179.0013888888889, -88.99986111111112])
    assert asset.extra_fields["raster:bands"][0]["data_type"] == "float32"


def test_a_search_answering_the_real_items(server, tmp_path):
    """The recorded items served by a STAC API on 127.0.0.1: the search returns them as written, by date."""
    features = [json.loads((STAC / n).read_text()) for n in (ES_C1, ES_L2A, ES_L2A_2023)]
    landing = {"type": "Catalog", "stac_version": "1.0.0", "id": "real", "description": "recorded items",
               "conformsTo": ["https://api.stacspec.org/v1.0.0/core", "https://api.stacspec.org/v1.0.0/item-search"],
               "links": [{"rel": "self", "href": f"{server.url}/stac/", "type": "application/json"},
                         {"rel": "root", "href": f"{server.url}/stac/", "type": "application/json"},
                         {"rel": "search", "href": f"{server.url}/stac/search", "type": "application/geo+json",
                          "method": "POST"}]}

    def search(handler, parts, body):
        wanted = json.loads(body)["collections"]
        found = [f for f in features if f["collection"] in wanted]
        return 200, {"Content-Type": "application/geo+json"}, json.dumps(
            {"type": "FeatureCollection", "features": found, "links": []}).encode()

    server.routes["/stac/"] = lambda h, p, b: (200, {"Content-Type": "application/json"}, json.dumps(landing).encode())
    server.routes["/stac/search"] = search
    http = Downloader(tmp_path / "cache", retries=1, backoff=0.01, timeout=10)
    items = search_items(http, f"{server.url}/stac/", "sentinel-2-l2a", [-64, -48, -62, -47], "2023-01-01/2025-12-31")
    assert [i.id for i in items] == ["S2B_20EPT_20250731_0_L2A", "S2A_13TDE_20231008_0_L2A"]
    assert list(by_date(items, "2023-01-01", "2025-12-31")) == ["2023-10-08", "2025-07-31"]

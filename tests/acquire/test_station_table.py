"""stations.csv checks in smdown.stations.read_stations: unknown soil moisture columns and coordinates out of range
are refused naming the file and row; a table written from a real ISMN download reads back as written."""

from __future__ import annotations

from pathlib import Path

import pytest

from smdown.acquire.ismn import read_ismn, write_csv
from smdown.acquire.region import make_region
from smdown.io import InputError
from smdown.stations import read_stations

REAL = Path(__file__).resolve().parents[1] / "data" / "real" / "ismn"


def test_unknown_soil_moisture_columns_are_refused(tmp_path):
    path = tmp_path / "stations.csv"
    path.write_text("station,lon,lat,date,sm_surface,sm_rootzone\nA,-120.0,37.0,2023-05-01,0.2,0.3\n")
    with pytest.raises(InputError) as err:
        read_stations(path)
    message = str(err.value)
    assert str(path) in message and "unknown column(s) ['sm_surface', 'sm_rootzone']" in message
    assert "expected station,lon,lat,date,surface,rootzone" in message


def test_swapped_coordinates_are_named(tmp_path):
    path = tmp_path / "stations.csv"
    path.write_text("station,lon,lat,date,surface\nA,37.0,-120.0,2023-05-01,0.2\nA,37.0,-120.0,2023-05-02,0.2\n")
    with pytest.raises(InputError, match=rf"{path}: row 1 of the table \(station 'A'\): lon 37.0, lat -120.0 are not "
                                         r"coordinates: lat and lon look swapped.*\(2 row\(s\) in all\)"):
        read_stations(path)


def test_coordinates_out_of_range_are_refused(tmp_path):
    path = tmp_path / "stations.csv"
    path.write_text("station,lon,lat,date,surface\nA,-120.0,37.0,2023-05-01,0.2\nB,322.0,36.6,2023-05-01,0.2\n")
    with pytest.raises(InputError, match=rf"{path}: row 2 of the table \(station 'B'\): lon 322.0, lat 36.6 are not "
                                         r"coordinates: lon must lie in -180..180 and lat in -90..90"):
        read_stations(path)
    path.write_text("station,lon,lat,date,surface\nA,-120.0,,2023-05-01,0.2\n")
    with pytest.raises(InputError, match=r"row 1 of the table \(station 'A'\): lon -120.0, lat nan are not"):
        read_stations(path)


def test_a_table_from_a_real_ismn_download_reads_back(tmp_path):
    region = make_region([-98.0, 36.0, -97.0, 37.0], "2017-09-01", "2017-09-30")
    table = read_ismn(REAL / "header_values_cosmos_20170810_20180809.zip", region, min_rootzone_depths=1)
    back = read_stations(write_csv(table, tmp_path / "stations.csv"))
    assert list(back.columns) == ["station", "lon", "lat", "date", "surface", "rootzone"]
    assert back["date"].tolist() == table["date"].tolist() and (back["lat"] == 36.6054).all()
    assert back["rootzone"].tolist() == pytest.approx(table["rootzone"].tolist(), abs=1e-5)

"""ISMN header+values parsing and depth matching."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from smdown.acquire.ismn import parse_header, read_ismn, rootzone_weights
from smdown.acquire.region import make_region
from smdown.io import InputError

from .conftest import add_ismn


def test_header_with_numeric_station_name():
    header = parse_header("SCAN         SCAN          2105       37.10000  -120.20000     50.00    0.0500    0.0500  Hydraprobe-Analog-(2.5-Volt)")
    assert header["network"] == "SCAN" and header["station"] == "2105"
    assert (header["lat"], header["lon"], header["depth_from"], header["depth_to"]) == (37.1, -120.2, 0.05, 0.05)
    assert header["sensor"] == "Hydraprobe-Analog-(2.5-Volt)"
    with pytest.raises(InputError, match="not an ISMN header"):
        parse_header("2023/05/01 00:00 0.2 G M")


def test_rootzone_weights():
    np.testing.assert_allclose(rootzone_weights([0.05, 0.2, 0.5, 1.0]), [0.125, 0.225, 0.4, 0.25])
    np.testing.assert_allclose(rootzone_weights([0.5]), [1.0])


def test_zip_download_is_read_like_a_folder(tmp_path):
    folder = add_ismn(tmp_path / "ismn")
    archive = tmp_path / "Data_separate_files_20230501_20230502.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in folder.rglob("*.stm"):
            z.write(path, path.relative_to(folder).as_posix())
    region = make_region([-120.15, 37.2, -119.85, 37.32], "2023-05-01", "2023-05-02")
    a, b = read_ismn(folder, region), read_ismn(archive, region)
    assert a.equals(b) and len(a) == 2


def test_no_station_in_region(tmp_path):
    folder = add_ismn(tmp_path / "ismn")
    with pytest.raises(InputError, match="no soil moisture stations"):
        read_ismn(folder, make_region([0, 0, 1, 1], "2023-05-01", "2023-05-02"))

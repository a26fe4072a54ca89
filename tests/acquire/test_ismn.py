"""ISMN downloads: real files (tests/data/real/ismn, see its README) read right or refused with the real reason;
depth matching with a tolerance; station rows from the fixture downloads."""

from __future__ import annotations

import zipfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from smdown.acquire.ismn import Sensor, is_surface, read_ismn, read_sensors, rootzone_weights
from smdown.acquire.region import make_region
from smdown.io import InputError

from .conftest import add_ismn, stm_file

REAL = Path(__file__).resolve().parents[1] / "data" / "real" / "ismn"
CEOP = REAL / "ceop_cosmos_20170810_20180809.zip"
HEADER = REAL / "header_values_cosmos_20170810_20180809.zip"
MULTI = REAL / "multinetwork_header_values.zip"
ARM1 = "COSMOS/ARM-1/COSMOS_COSMOS_ARM-1_sm_0.000000_0.190000_Cosmic-ray-Probe_20170810_20180809.stm"
BARROW = "COSMOS/Barrow-ARM/COSMOS_COSMOS_Barrow-ARM_sm_0.000000_0.210000_Cosmic-ray-Probe_20170810_20180809.stm"


def by_hand(archive: Path, member: str, ceop: bool) -> tuple[dict, int, int, tuple]:
    """Daily means of the G values, the counts and (lat, lon, depth_from, depth_to), read from the text itself:
    CEOP lines are 'date time date time cse network station lat lon elev from to value flag orig', header+values
    files a header 'cse network station lat lon elev from to sensor' and 'date time value flag orig' lines."""
    with zipfile.ZipFile(archive) as z:
        lines = z.read(member).decode().splitlines()
    if ceop:
        meta = lines[0].split()
        where = (float(meta[7]), float(meta[8]), float(meta[10]), float(meta[11]))
        rows = [(t[0], float(t[12]), t[13]) for t in (line.split() for line in lines) if len(t) >= 14]
    else:
        meta = lines[0].split()
        where = (float(meta[3]), float(meta[4]), float(meta[6]), float(meta[7]))
        rows = [(t[0], float(t[2]), t[3]) for t in (line.split() for line in lines[1:]) if len(t) >= 4]
    days = defaultdict(list)
    for day, value, flag in rows:
        if flag == "G":
            days[day.replace("/", "-")].append(value)
    return {d: float(np.mean(v)) for d, v in days.items()}, len(rows), sum(map(len, days.values())), where


@pytest.mark.parametrize("archive, ceop", [(CEOP, True), (HEADER, False)])
def test_real_cosmos_downloads_in_both_formats_are_read_as_written(archive, ceop):
    sensors = {s.station: s for s in read_sensors(archive)}
    assert sorted(sensors) == ["ARM-1", "Barrow-ARM"]
    for name, member, good in (("ARM-1", ARM1, 6514), ("Barrow-ARM", BARROW, 4963)):
        daily, values, n_good, (lat, lon, top, bottom) = by_hand(archive, member, ceop)
        s = sensors[name]
        assert (s.good, n_good) == (good, good)
        assert s.values == values and s.flags["G"] == good and s.flags["D"] == values - good
        assert (s.lat, s.lon, s.depth_from, s.depth_to) == (lat, lon, top, bottom)
        assert s.network == "COSMOS" and s.path == member
        assert list(s.daily.index) == sorted(daily)
        np.testing.assert_allclose(s.daily.to_numpy(), [daily[d] for d in sorted(daily)], rtol=0, atol=1e-12)
    arm = sensors["ARM-1"]
    assert (arm.lat, arm.lon, arm.depth_from, arm.depth_to) == (36.6054, -97.4878, 0.0, 0.19)  # CEOP: not -97.49, 322
    assert len(arm.daily) == 333 and arm.daily.index[0] == "2017-08-10" and arm.daily.index[-1] <= "2018-08-09"


def test_both_formats_give_the_same_stations_csv():
    region = make_region([-98.0, 36.0, -97.0, 37.0], "2017-08-10", "2018-08-09")
    a, b = read_ismn(CEOP, region, 1), read_ismn(HEADER, region, 1)
    assert a.equals(b) and len(a) == 333 and set(a["station"]) == {"COSMOS_ARM-1"}


def test_a_cosmic_ray_probe_is_refused_for_its_depth_not_its_flags():
    """A single 0-0.19 m probe is neither a surface sensor (0-0.05 m) nor a root-zone profile (2 depths)."""
    region = make_region([-98.0, 36.0, -97.0, 37.0], "2017-09-01", "2017-09-30")
    with pytest.raises(InputError) as err:
        read_ismn(CEOP, region, min_rootzone_depths=2)
    message = str(err.value)
    assert f"no station of {CEOP} is kept" in message and "2 station(s) read" in message
    assert "1 depth: COSMOS_ARM-1 (sensors at 0-0.19 m: none within 0-0.05 m and 1 root-zone depth(s)" in message
    assert "acquire.ismn.min_rootzone_depths (2)" in message
    assert "1 outside acquire.bbox: COSMOS_Barrow-ARM (at lon -156.629, lat 71.3298)" in message
    assert "good (G)" not in message and "flag" not in message.split("dropped for:")[1].split(".")[0]
    # One depth is enough when the user says so: the probe's daily G means become the root-zone values.
    table = read_ismn(CEOP, region, min_rootzone_depths=1)
    daily = by_hand(CEOP, ARM1, True)[0]
    assert table["surface"].isna().all() and len(table) == 30
    np.testing.assert_allclose(table["rootzone"], [daily[d] for d in table["date"]], atol=1e-12)


def test_outside_the_period_is_named():
    region = make_region([-98.0, 36.0, -97.0, 37.0], "2020-01-01", "2020-01-31")
    with pytest.raises(InputError, match=r"1 no G value in acquire.start..end: COSMOS_ARM-1 \(G values "
                                         r"2017-08-10..2018-08-0\d\)"):
        read_ismn(HEADER, region, 2)


def test_unchecked_flags_are_named_as_the_reason():
    """The multi-network sample (SCAN, SOILSCAPE, MAQU) holds U (unchecked), C and D flags, no G."""
    sensors = read_sensors(MULTI)
    assert len(sensors) == 8 and all(s.good == 0 for s in sensors)
    abrams = next(s for s in sensors if s.station == "Abrams")
    assert (abrams.lat, abrams.lon, abrams.values) == (37.133, -97.083, 55167)
    assert dict(abrams.flags) == {"U": 46231, "D": 8936}
    region = make_region([-98.0, 36.5, -96.5, 37.5], "2010-05-01", "2010-05-31")
    with pytest.raises(InputError, match=r"1 no value flagged G: SCAN_Abrams \(flags \{'U': 46231, 'D': 8936\}\)"):
        read_ismn(MULTI, region, 2)


def test_real_files_with_carriage_return_lines_in_both_formats():
    """SMOSMANIA Narbonne, January 2007, written with CR line ends, in the CEOP and header+values formats."""
    a = read_sensors(REAL / "ceop_smosmania")
    b = read_sensors(REAL / "header_values_smosmania")
    for sensors in (a, b):
        (s,) = sensors
        assert (s.network, s.station, s.lat, s.lon, s.depth_from, s.depth_to) == (
            "SMOSMANIA", "Narbonne", 43.15, 2.9567, 0.05, 0.05)
        assert (s.values, dict(s.flags), s.good) == (741, {"U": 736, "D": 5}, 0)


def test_scan_two_inch_sensors_are_surface_sensors(tmp_path):
    """SCAN writes its surface sensors at 2 in = 0.0508 m (the multi-network sample's file names say 0.050800)."""
    names = zipfile.ZipFile(MULTI).namelist()
    depths = {float(Path(n).name.split("_sm_")[1].split("_")[0]) for n in names if n.startswith("SCAN/") and ".stm" in n}
    assert depths == {0.0508}
    sensor = Sensor("SCAN", "x", 37.0, -97.0, 0.0508, 0.0508, "Hydraprobe", None)
    assert is_surface(sensor)
    assert not is_surface(Sensor("SCAN", "x", 37.0, -97.0, 0.1016, 0.1016, "Hydraprobe", None))
    folder = tmp_path / "scan"
    stm_file(folder, "SCAN", "Two-Inch", 37.25, -120.0, (0.0508, 0.0508),
             [("2023/05/01 00:00", 0.20, "G"), ("2023/05/01 12:00", 0.24, "G"), ("2023/05/02 00:00", 0.3, "D01")])
    table = read_ismn(folder, make_region([-120.15, 37.2, -119.85, 37.32], "2023-05-01", "2023-05-02"), 2)
    assert table[["station", "date"]].values.tolist() == [["SCAN_Two-Inch", "2023-05-01"]]
    assert table["surface"].iloc[0] == pytest.approx(0.22) and np.isnan(table["rootzone"].iloc[0])


def test_coordinates_out_of_range_are_refused_naming_the_file(tmp_path):
    folder = tmp_path / "swapped"
    path = stm_file(folder, "SCAN", "Swapped", -120.0, 37.25, (0.05, 0.05), [("2023/05/01 00:00", 0.2, "G")])
    with pytest.raises(InputError) as err:
        read_sensors(folder)
    message = str(err.value)
    assert path.name in message and "lat -120, lon 37.25" in message and "(lat and lon look swapped)" in message
    folder = tmp_path / "far"
    stm_file(folder, "SCAN", "Far", 37.25, 322.0, (0.05, 0.05), [("2023/05/01 00:00", 0.2, "G")])
    with pytest.raises(InputError, match="lat 37.25, lon 322 are outside lat -90..90 / lon -180..180. The file"):
        read_sensors(folder)


def test_not_an_ismn_download(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no data")
    with pytest.raises(InputError, match="holds no soil moisture .stm files .*not an ISMN download"):
        read_sensors(tmp_path / "empty")
    (tmp_path / "file.csv").write_text("a,b\n")
    with pytest.raises(InputError, match="is neither a folder nor a zip of an ISMN download"):
        read_sensors(tmp_path / "file.csv")
    with pytest.raises(InputError, match="acquire.ismn.path: .*missing not found"):
        read_sensors(tmp_path / "missing")


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
    a, b = read_ismn(folder, region, 2), read_ismn(archive, region, 2)
    assert a.equals(b) and len(a) == 2
    # surface: the 0.05 m sensor's G values (the D03 reading dropped); rootzone: the four depths weighted
    assert a["surface"].tolist() == pytest.approx([0.21, 0.18])
    assert a["rootzone"].iloc[0] == pytest.approx(0.125 * 0.21 + 0.225 * 0.25 + 0.4 * 0.30 + 0.25 * 0.35)


def test_no_station_in_region(tmp_path):
    folder = add_ismn(tmp_path / "ismn")
    with pytest.raises(InputError, match=r"2 station\(s\) read, dropped for: 2 outside acquire.bbox"):
        read_ismn(folder, make_region([0, 0, 1, 1], "2023-05-01", "2023-05-02"), 2)

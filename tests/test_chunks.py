"""Time chunks of a record (smdown.chunks) and the raster pieces they rest on: a merge that keeps a chunk's own days,
the VRT that joins the chunks into one record, and the digest that says which chunk's days changed."""

import numpy as np
import pytest
import rasterio
from conftest import make_dates

from smdown import chunks, io
from smdown.grid import nested_grid


def test_weeks_and_months_with_their_lead_in_days():
    dates = make_dates("2023-04-28", 20)  # Friday 28 April to Wednesday 17 May
    weeks = chunks.split(dates, "week", lead_days=3)
    assert list(weeks) == ["2023-W17", "2023-W18", "2023-W19", "2023-W20"]
    assert weeks["2023-W17"].days == ("2023-04-28", "2023-04-29", "2023-04-30")
    assert weeks["2023-W17"].lead == 0  # the record holds no day before its first
    assert weeks["2023-W18"].window[:3] == ("2023-04-28", "2023-04-29", "2023-04-30")
    assert weeks["2023-W18"].days[0] == "2023-05-01" and len(weeks["2023-W18"].days) == 7
    assert weeks["2023-W20"].days == ("2023-05-15", "2023-05-16", "2023-05-17")
    months = chunks.split(dates, "month", lead_days=10)
    assert list(months) == ["2023-04", "2023-05"]
    assert months["2023-05"].window[0] == "2023-04-28" and months["2023-05"].lead == 3
    # a gap in the record: the lead-in holds the record's days of the 10 calendar days before, not 10 days
    sparse = [d for d in dates if d not in ("2023-04-29", "2023-04-30")]
    assert chunks.split(sparse, "month", 10)["2023-05"].window[:2] == ("2023-04-28", "2023-05-01")


def test_new_days_leave_the_earlier_chunks_as_they_were():
    before = chunks.split(make_dates("2023-05-01", 14), "week", 5)
    after = chunks.split(make_dates("2023-05-01", 24), "week", 5)
    assert after["2023-W18"] == before["2023-W18"] and after["2023-W19"] == before["2023-W19"]
    assert set(after) - set(before) == {"2023-W20", "2023-W21"}


def test_an_unknown_chunk_is_refused():
    with pytest.raises(ValueError, match="chunks.by"):
        chunks.chunk_name("2023-05-01", "fortnight")


@pytest.fixture
def dated(coarse_grid, write_raster):
    grid = nested_grid(coarse_grid, 3)
    dates = make_dates("2023-05-01", 6)
    data = np.arange(6 * grid.height * grid.width, dtype=np.float32).reshape(6, grid.height, grid.width) / 1000
    data[2, 0, 0] = np.nan
    return write_raster("map.tif", data, grid, dates), data, grid, dates


def test_a_merge_keeps_the_days_asked_for(tmp_path, dated):
    path, data, grid, dates = dated
    out = tmp_path / "kept.tif"
    io.merge([path], out, days=dates[2:], cog=True)
    kept = io.read_stack(out)
    assert kept.dates == dates[2:]
    np.testing.assert_array_equal(kept.data, data[2:])
    io.merge([path], tmp_path / "all.tif", days=dates)
    np.testing.assert_array_equal(io.read_stack(tmp_path / "all.tif").data, data)


@pytest.mark.parametrize("dtype", ["float32", "int16"])
def test_a_vrt_over_chunks_reads_as_the_whole_record(tmp_path, dated, dtype):
    path, data, grid, dates = dated
    (tmp_path / "chunks").mkdir()
    parts = []
    for name, days in (("a", dates[:2]), ("b", dates[2:5]), ("c", dates[5:])):
        part = tmp_path / "chunks" / f"{name}.tif"
        io.merge([path], part, days=days, dtype=dtype, cog=True)
        parts.append(part)
    record = tmp_path / "record" / "map.vrt"
    assert io.write_time_vrt(parts, record) == dates
    whole = io.read_stack(record)
    assert whole.dates == dates and whole.grid == grid
    tolerance = 0 if dtype == "float32" else io.INT16_SCALE / 2 + 1e-7
    np.testing.assert_allclose(whole.data, data, atol=tolerance, rtol=0)
    assert np.isnan(whole.data[2, 0, 0])
    with rasterio.open(record) as src:  # GDAL reads it as one dated raster
        assert src.driver == "VRT" and src.count == 6 and src.descriptions[3] == dates[3]
    with pytest.raises(ValueError, match="does not follow"):
        io.write_time_vrt([parts[1], parts[0]], tmp_path / "bad.vrt")


def test_a_digest_changes_with_its_days_only(tmp_path, dated, write_raster):
    path, data, grid, dates = dated
    first = io.band_digest(path, dates[0], dates[2])
    changed = data.copy()
    changed[4, 1, 1] += 0.5
    other = write_raster("changed.tif", changed, grid, dates)
    assert io.band_digest(other, dates[0], dates[2]) == first  # day 5 lies outside
    assert io.band_digest(other, dates[0], dates[4]) != io.band_digest(path, dates[0], dates[4])
    longer = write_raster("longer.tif", np.concatenate([data, data[:1]]), grid, dates + ["2023-05-07"])
    assert io.band_digest(longer, dates[0], dates[2]) == first  # a day added after leaves it as it was

"""Time: a cloudy NDVI stack (every 5 days, NaN gaps) filled onto daily dates as smdown/temporal.py documents."""

import numpy as np
import pytest
from conftest import make_dates

from smdown.preparing import temporal

NAN = np.nan
OBS = make_dates("2023-05-01", 7, step=5)  # 05-01, 05-06, ..., 05-31
DAILY = make_dates("2023-04-19", 50)  # 04-19 .. 06-07
MAX_GAP = 10


def _series(values):
    return np.array(values, dtype=np.float32)[:, None, None]


def _expected(points: dict[str, float]) -> np.ndarray:
    """Daily expected values: NaN except on the given days."""
    out = np.full(len(DAILY), np.nan, dtype=np.float32)
    for day, value in points.items():
        out[DAILY.index(day)] = value
    return out


def _fill(values, max_gap=MAX_GAP):
    return temporal.fill_to_dates(_series(values), OBS, DAILY, max_gap)[:, 0, 0]


def test_linear_between_valid_observations_and_nearest_at_the_ends():
    # valid on 05-06 (0.2) and 05-16 (0.4): a 10-day gap, bridged; NaN (clouds) elsewhere
    out = _fill([NAN, 0.2, NAN, 0.4, NAN, NAN, NAN])
    days = make_dates("2023-04-26", 31)  # 05-06 - 10 days .. 05-16 + 10 days
    values = [0.2] * 11 + [0.2 + 0.02 * i for i in range(1, 10)] + [0.4] * 11
    np.testing.assert_allclose(out, _expected(dict(zip(days, values, strict=True))), rtol=1e-6, equal_nan=True)
    assert out[DAILY.index("2023-05-11")] == pytest.approx(0.3)
    assert np.isnan(out[DAILY.index("2023-04-25")]) and np.isnan(out[DAILY.index("2023-05-27")])


def test_a_gap_longer_than_max_gap_stays_nan():
    # 05-01 (0.1) and 05-21 (0.5): 20 days apart, not bridged; 05-21 .. 05-31 (0.7) is bridged
    out = _fill([0.1, NAN, NAN, NAN, 0.5, NAN, 0.7])
    points = {d: 0.1 for d in make_dates("2023-04-21", 11)}  # carried back 10 days from 05-01
    points.update({d: 0.5 + 0.02 * i for i, d in enumerate(make_dates("2023-05-21", 11))})
    points.update({d: 0.7 for d in make_dates("2023-05-31", 8)})  # carried forward to 06-07 (7 days)
    np.testing.assert_allclose(out, _expected(points), rtol=1e-6, equal_nan=True)
    assert np.isnan(out[DAILY.index("2023-05-02")]) and np.isnan(out[DAILY.index("2023-05-20")])


def test_a_longer_max_gap_bridges_the_gap():
    out = _fill([0.1, NAN, NAN, NAN, 0.5, NAN, 0.7], max_gap=20)
    assert out[DAILY.index("2023-05-11")] == pytest.approx(0.3)
    assert out[DAILY.index("2023-04-19")] == pytest.approx(0.1)  # 12 days before the first: within 20


def test_an_always_cloudy_pixel_stays_nan_and_pixels_are_independent():
    stack = np.full((7, 2, 3), 0.6, dtype=np.float32)
    stack[:, 0, 0] = NAN  # always cloudy
    stack[2:5, 1, 2] = NAN  # a 20-day cloudy spell: 05-06 .. 05-26 is not bridged with max_gap 10
    stack[3, 0, 1] = NAN  # one cloudy scene: bridged
    stack[:, 1, 1] = np.arange(7) / 10
    out = temporal.fill_to_dates(stack, OBS, DAILY, MAX_GAP)
    assert out.shape == (50, 2, 3) and out.dtype == np.float32
    assert np.isnan(out[:, 0, 0]).all()
    assert np.isnan(out[DAILY.index("2023-05-16"), 1, 2])
    assert out[DAILY.index("2023-05-16"), 0, 1] == pytest.approx(0.6)
    assert out[DAILY.index("2023-05-08"), 1, 1] == pytest.approx(0.14)
    np.testing.assert_allclose(out[DAILY.index("2023-05-01"):DAILY.index("2023-05-31") + 1, 0, 2], 0.6)


def test_observations_are_kept_on_their_own_dates():
    rng = np.random.default_rng(1)
    stack = rng.random((7, 4, 4)).astype(np.float32)
    stack[rng.random(stack.shape) < 0.3] = NAN
    out = temporal.fill_to_dates(stack, OBS, OBS, MAX_GAP)
    valid = np.isfinite(stack)
    np.testing.assert_array_equal(out[valid], stack[valid])


def test_day_numbers_and_day_of_year():
    np.testing.assert_array_equal(np.diff(temporal.day_numbers(["2023-12-31", "2024-01-01", "2024-03-01"])), [1, 60])
    np.testing.assert_array_equal(temporal.day_of_year(["2023-01-01", "2024-03-01", "2023-12-31"]), [1, 61, 365])


def test_antecedent_index_on_a_known_series():
    rain = np.array([10.0, 0.0, NAN, 5.0, 0.0], dtype=np.float32)[:, None]
    out = temporal.antecedent_index(rain, 0.5)[:, 0]
    # API_t = 0.5 API_{t-1} + P_t; a missing day counts as no rain for the memory but stays NaN
    np.testing.assert_allclose(out, [10.0, 5.0, NAN, 6.25, 3.125], equal_nan=True)
    out = temporal.antecedent_index(np.ones((4, 2, 2), dtype=np.float32), 0.9)
    np.testing.assert_allclose(out[:, 1, 1], [1.0, 1.9, 2.71, 3.439], rtol=1e-6)


def test_carried_indices_continue_a_series_exactly():
    """A time chunk's indices continue from the state the days before left (NaN days counted as no rain): the same
    float32 values as over the whole series at once."""
    rng = np.random.default_rng(3)
    rain = rng.gamma(0.4, 6.0, size=(30, 3, 4)).astype(np.float32)
    rain[5, 1, 1] = rain[19, 0, 2] = np.nan
    whole = temporal.antecedent_index(rain, 0.93)
    state = temporal.antecedent_state(rain[:20], 0.93, np.zeros((3, 4), np.float32))
    lead_in = rain[14:]  # six lead-in days, then the chunk from day 20
    carried = temporal.antecedent_index(lead_in, 0.93, restart=(6, state))
    np.testing.assert_array_equal(carried[6:], whole[20:])
    assert not np.array_equal(temporal.antecedent_index(lead_in, 0.93)[6:], whole[20:])  # restarted at zero
    # a chain of states equals the state of the whole series
    chained = temporal.antecedent_state(rain[20:], 0.93, state)
    np.testing.assert_array_equal(chained, temporal.antecedent_state(rain, 0.93, np.zeros((3, 4), np.float32)))


def test_the_api_state_step_chains_chunks_as_one_series(tmp_path, coarse_grid, write_raster):
    from smdown import io
    from smdown.grid import nested_grid
    from smdown.preparing.prepare_steps import api_state

    grid = nested_grid(coarse_grid, 4)
    dates = make_dates("2023-05-01", 12)
    rain = np.random.default_rng(5).gamma(0.5, 5.0, size=(12, grid.height, grid.width)).astype(np.float32)
    rain[3, 2, 2] = np.nan
    path = write_raster("precipitation.tif", rain, grid, dates)
    api_state(str(path), None, dates[:5], [0.7, 0.93], str(tmp_path / "first.tif"), max_pixels=50)
    api_state(str(path), str(tmp_path / "first.tif"), dates[5:], [0.7, 0.93], str(tmp_path / "second.tif"))
    chained = io.read_window(tmp_path / "second.tif", 0, 0, grid.height, grid.width)
    for i, decay in enumerate([0.7, 0.93]):
        whole = temporal.antecedent_state(rain, decay, np.zeros(rain.shape[1:], np.float32))
        np.testing.assert_array_equal(chained[i], whole)

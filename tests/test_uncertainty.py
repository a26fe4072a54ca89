"""The calibrated uncertainty (smdown.uncertainty): its parts, its fits, and the rule's map on the tiny run."""

import json

import numpy as np
import pandas as pd
import pytest

from smdown import io
from smdown import uncertainty as unc


def test_cell_within_std_is_per_cell_and_day():
    field = np.zeros((2, 4, 4), np.float32)
    field[0, :2, :2] = [[0.1, 0.3], [0.1, 0.3]]  # std 0.1 in cell (0, 0) on day 0
    field[1, 2:, 2:] = np.nan  # a cell-day without a finite pixel
    within = unc.cell_within_std(field, 2)
    assert within.shape == field.shape
    np.testing.assert_allclose(within[0, :2, :2], 0.1, atol=1e-7)
    assert np.all(within[0, 2:, :] == 0) and np.all(within[1, :2, :] == 0)
    assert np.isnan(within[1, 2:, 2:]).all()


def test_sigma_adds_its_parts_in_quadrature():
    cal = unc.Calibration(a=0.03, b=0.1, k=2.0)
    ensemble = np.array([0.2, 0.4, np.nan], np.float32)
    spread = np.array([0.01, np.nan, 0.01], np.float32)
    within = np.array([0.005, 0.0, 0.0], np.float32)
    sig = unc.sigma(ensemble, spread, within, cal)
    expected = np.sqrt([0.03**2 + 0.02**2 + 0.01**2 + 0.01**2, 0.03**2 + 0.04**2])
    np.testing.assert_allclose(sig[:2], expected, rtol=1e-5)
    assert np.isnan(sig[2])
    # never narrower than the members' spread
    assert np.all(unc.sigma(ensemble[:1], np.array([0.5], np.float32), within[:1], cal) >= 0.5)


def test_station_fit_recovers_a_known_error_model():
    rng = np.random.default_rng(0)
    ensemble = rng.uniform(0.05, 0.45, 4000)
    spread = np.full_like(ensemble, 0.005)
    true_sigma = np.sqrt(0.01**2 + (0.15 * ensemble) ** 2 + spread**2)
    error = true_sigma * rng.standard_normal(ensemble.size)
    cal = unc.fit_stations(ensemble, spread, error)
    assert cal.source == "stations" and cal.n == 4000 and cal.k == 0
    assert cal.a == pytest.approx(0.01, abs=0.004)
    assert cal.b == pytest.approx(0.15, rel=0.1)
    sig = unc.sigma(ensemble, spread, np.zeros_like(ensemble), cal)
    assert unc.coverage(error, sig) == pytest.approx(0.90, abs=0.02)
    # a station error given is removed from the uncertainty
    noisy = error + 0.02 * rng.standard_normal(ensemble.size)
    assert unc.fit_stations(ensemble, spread, noisy, station_error=0.02).b == pytest.approx(0.15, rel=0.15)
    with pytest.raises(ValueError, match="too few"):
        unc.fit_stations(ensemble[:2], spread[:2], error[:2])


def test_within_factor_from_the_self_similarity_check():
    table = {"member": np.array(["dnn", "cnn"]), "weight": np.array([0.5, 0.5]),
             "similarity_r": np.array([0.6, 0.6]), "similarity_ratio": np.array([0.6, 0.6])}
    assert unc.within_factor(table, 1.0) == pytest.approx(np.sqrt((1 + 0.36 - 0.72) / 0.36))
    # a perfect check: no within-cell error
    perfect = {**table, "similarity_r": np.array([1.0, 1.0]), "similarity_ratio": np.array([1.0, 1.0])}
    assert unc.within_factor(perfect, 1.0) == pytest.approx(0.0, abs=1e-9)
    assert unc.within_factor({"member": table["member"], "weight": table["weight"]}, 1.3) == 1.3
    assert unc.within_factor(None, 1.3) == 1.3


def test_the_tiny_run_has_a_calibrated_uncertainty(tiny_run):
    _, results, _ = tiny_run
    for layer in ("surface", "rootzone"):
        ensemble = io.read_stack(results / "downscaled" / layer / "ensemble.tif")
        sig = io.read_stack(results / "downscaled" / layer / "uncertainty.tif")
        spread = io.read_stack(results / "downscaled" / layer / "ensemble_std.tif")
        assert sig.dates == ensemble.dates and sig.data.shape == ensemble.data.shape
        finite = np.isfinite(ensemble.data)
        assert np.array_equal(np.isfinite(sig.data), finite)
        assert np.all(sig.data[finite] >= spread.data[finite] - 1e-6)
        cal = pd.read_csv(results / "ensemble" / layer / "calibration.csv")
        assert cal["source"].iloc[0] in unc.SOURCES and cal["a"].iloc[0] >= 0
    table = pd.read_csv(results / "evaluation" / "uncertainty.csv")
    assert {"ensemble_std", "uncertainty"} <= set(table["spread"])
    assert set(pd.read_csv(results / "evaluation" / "reliability.csv")["spread"]) <= {"ensemble_std", "uncertainty"}


def _tiny_world(tmp_path, station_days: int):
    """A 2 x 2-cell region, factor 3, `station_days` days: ensemble, spread, coarse, weights, split, stations."""
    from smdown.grid import block_mean, ease2_9km_grid, nested_grid

    x, y = io.lonlat_to("EPSG:6933", -120.0, 37.0)
    coarse_grid = ease2_9km_grid(float(x[0]), float(y[0]), 2, 2)
    fine_grid = nested_grid(coarse_grid, 3)
    dates = pd.date_range("2023-05-01", periods=station_days).strftime("%Y-%m-%d").tolist()
    rng = np.random.default_rng(1)
    ensemble = (0.1 + 0.3 * rng.random((len(dates), 6, 6))).astype(np.float32)
    paths = {name: tmp_path / f"{name}.tif" for name in ("ensemble", "ensemble_std", "coarse")}
    io.write_stack(paths["ensemble"], io.Stack(ensemble, fine_grid, dates))
    io.write_stack(paths["ensemble_std"], io.Stack(np.full_like(ensemble, 0.005), fine_grid, dates))
    io.write_stack(paths["coarse"], io.Stack(block_mean(ensemble, 3), coarse_grid, dates))
    pd.DataFrame({"member": ["dnn", "cnn", "rf"], "weight": [0.5, 0.5, 0.0]}).to_csv(tmp_path / "weights.csv",
                                                                                       index=False)
    (tmp_path / "split.json").write_text(json.dumps({"test_dates": dates[-1:]}))
    rows = []
    for i, (row, col) in enumerate([(1, 1), (4, 2), (2, 5)]):
        lon, lat = io.to_lonlat(fine_grid.crs, *(fine_grid.transform @ (col + 0.5, row + 0.5)))
        rows += [{"station": f"s{i}", "lon": float(lon[0]), "lat": float(lat[0]), "date": d,
                  "surface": float(ensemble[t, row, col] + 0.03 * rng.standard_normal()), "rootzone": np.nan}
                 for t, d in enumerate(dates)]
    pd.DataFrame(rows).to_csv(tmp_path / "stations.csv", index=False)
    return paths, ensemble


SETTINGS = {"use_stations": True, "min_station_days": 30, "station_error": 0.0,
            "coarse_error": {"surface": 0.04, "rootzone": 0.03}, "within_factor": 1.0}


@pytest.mark.parametrize("days, source", [(12, "stations"), (6, "prior")])
def test_the_rule_step_calibrates_on_stations_or_falls_back_to_the_prior(tmp_path, days, source):
    from smdown.rules.uncertainty import uncertainty

    paths, ensemble = _tiny_world(tmp_path, days)
    out = tmp_path / "uncertainty.tif"
    cal = uncertainty("surface", str(paths["ensemble"]), str(paths["ensemble_std"]), str(tmp_path / "weights.csv"),
                      str(paths["coarse"]), str(tmp_path / "split.json"), str(tmp_path / "stations.csv"), str(out),
                      str(tmp_path / "calibration.csv"), {**SETTINGS, "min_station_days": 30})
    table = pd.read_csv(tmp_path / "calibration.csv")
    assert cal.source == source == table["source"].iloc[0]
    sig = io.read_stack(out)
    assert sig.data.shape == ensemble.shape and np.isfinite(sig.data).all()
    if source == "stations":  # 3 stations x 11 days outside the test day; errors of SD 0.03
        assert table["n"].iloc[0] == 33 and table["station_days"].iloc[0] == 33
        assert 0.015 < float(np.sqrt(np.mean(sig.data**2))) < 0.05
    else:  # 3 x 5 = 15 station-days are too few: a = coarse_error, k = within_factor (no self-similarity check)
        assert cal.a == 0.04 and cal.k == 1.0
        within = unc.cell_within_std(ensemble, 3)
        np.testing.assert_allclose(sig.data, np.sqrt(0.04**2 + within**2 + 0.005**2), rtol=1e-5)

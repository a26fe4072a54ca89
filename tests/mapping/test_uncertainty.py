"""The calibrated uncertainty (smdown.mapping.uncertainty): its parts, its fits, and the rule's map on the tiny run."""

import json

import numpy as np
import pandas as pd
import pytest

from smdown import io
from smdown.mapping import uncertainty as unc


def test_local_detail_is_the_departure_from_the_neighbourhood_mean():
    field = np.zeros((2, 5, 5), np.float32)
    field[0, 2, 2] = 0.9  # a spike: the 3 x 3 mean around it is 0.1
    field[1, 0, 0] = np.nan
    detail = unc.local_detail(field, 3)
    assert detail.shape == field.shape
    assert detail[0, 2, 2] == pytest.approx(0.8, abs=1e-6)
    assert detail[0, 1, 1] == pytest.approx(0.1, abs=1e-6) and detail[0, 0, 0] == 0
    assert np.isnan(detail[1, 0, 0]) and np.all(detail[1][np.isfinite(field[1])] == 0)  # NaN left out of the means
    assert unc.local_detail(field, 4)[0, 2, 2] == pytest.approx(0.9 - 0.9 / 25, abs=1e-6)  # an even window: 5
    assert np.all(unc.local_detail(field, 1)[np.isfinite(field)] == 0)  # window 1: no detail
    # a halo feeds the means and is cropped: the inner 3 x 3 of the whole field's detail
    np.testing.assert_allclose(unc.local_detail(field[:1], 3, 1), detail[:1, 1:4, 1:4], atol=1e-7)


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


def test_station_fits_weigh_each_station_once_and_the_scale_is_drawn_towards_the_prior():
    # ensemble 0: b has nothing to act on, so a^2 is the weighted mean square error
    quiet = np.tile([0.01, -0.01], 50)  # station A: 100 days of error 0.01
    loud = np.tile([0.05, -0.05], 5)  # station B: 10 days of error 0.05
    error = np.concatenate([quiet, loud])
    station = np.array(["A"] * quiet.size + ["B"] * loud.size)
    zeros = np.zeros_like(error)
    by_day = unc.fit_stations(zeros, zeros, error)
    assert by_day.a == pytest.approx(np.sqrt((100 * 0.01**2 + 10 * 0.05**2) / 110), rel=1e-3)
    mse = (0.01**2 + 0.05**2) / 2
    assert unc.fit_stations(zeros, zeros, error, station=station).a == pytest.approx(np.sqrt(mse), rel=1e-3)
    # the prior's model (a = 0.03, k = 2) scaled: c^2 = mse / 0.03^2 with the detail 0
    scaled = unc.fit_scale(zeros, error, 0.03, zeros, k=2.0, station=station)
    c = np.sqrt(mse) / 0.03
    assert scaled.a == pytest.approx(np.sqrt(mse), rel=1e-3) and scaled.k == pytest.approx(2.0 * c, rel=1e-3)
    assert scaled.b == 0 and scaled.source == "stations" and scaled.n == error.size
    # the prior weighing as the 2 stations do: c^2 halfway to 1, so a^2 = (mse + 0.03^2) / 2
    drawn = unc.fit_scale(zeros, error, 0.03, station=station, prior_weight=2.0)
    assert drawn.a == pytest.approx(np.sqrt((mse + 0.03**2) / 2), rel=1e-3)
    assert unc.fit_scale(zeros, error, 0.03, station=station, prior_weight=1e4).a == pytest.approx(0.03, rel=1e-3)
    # a station error given is taken out: errors of exactly that size leave the smallest scale
    assert unc.fit_scale(zeros, error, 0.03, station=station, station_error=0.06).a < 0.001
    with pytest.raises(ValueError, match="too few"):
        unc.fit_scale(zeros[:2], error[:2], 0.03)


def test_station_fit_with_the_detail_term_keeps_the_interval_right_where_the_detail_is_large():
    # the error std grows with the local detail: sigma^2 = 0.01^2 + (1.5 detail)^2
    rng = np.random.default_rng(3)
    detail = rng.uniform(0.0, 0.04, 6000)
    ensemble = rng.uniform(0.05, 0.45, detail.size)
    spread = np.zeros_like(ensemble)
    true_sigma = np.sqrt(0.01**2 + (1.5 * detail) ** 2)
    error = true_sigma * rng.standard_normal(detail.size)
    large = detail > 0.03
    with_k = unc.fit_stations(ensemble, spread, error, detail=detail, k=1.5)
    assert with_k.k == 1.5 and with_k.a == pytest.approx(0.01, abs=0.003) and with_k.b < 0.02
    sig = unc.sigma(ensemble, spread, detail, with_k)
    assert unc.coverage(error[large], sig[large]) == pytest.approx(0.90, abs=0.03)
    assert unc.coverage(error[~large], sig[~large]) == pytest.approx(0.90, abs=0.03)
    assert np.corrcoef(sig, np.abs(error))[0, 1] > 0.3
    # without the term the same stations give one width for all: too narrow where the detail is large
    without = unc.fit_stations(ensemble, spread, error)
    sig0 = unc.sigma(ensemble, spread, detail, without)
    assert without.k == 0 and unc.coverage(error[large], sig0[large]) < 0.85


def test_within_factor_from_the_self_similarity_check():
    table = {"member": np.array(["dnn", "cnn"]), "weight": np.array([0.5, 0.5]),
             "similarity_r": np.array([0.6, 0.6]), "similarity_ratio": np.array([0.6, 0.6])}
    assert unc.within_factor(table, 1.0) == pytest.approx(np.sqrt((1 + 0.36 - 0.72) / 0.36))
    # a perfect check: no within-cell error
    perfect = {**table, "similarity_r": np.array([1.0, 1.0]), "similarity_ratio": np.array([1.0, 1.0])}
    assert unc.within_factor(perfect, 1.0) == pytest.approx(0.0, abs=1e-9)
    assert unc.within_factor({"member": table["member"], "weight": table["weight"]}, 1.3) == 1.3
    assert unc.within_factor(None, 1.3) == 1.3
    # a member that paints a hundredth of the detail (a panel world's DNN) weighs in the painted detail as little as
    # it paints: k follows the others' (a ratio per member was about 100 and the intervals 0.4 m3/m3 wide)
    flat = {"member": np.array(["dnn", "cnn", "lstm"]), "weight": np.array([0.33, 0.28, 0.39]),
            "similarity_r": np.array([-0.49, 0.09, -0.26]), "similarity_ratio": np.array([0.0098, 0.227, 0.134])}
    w, r, s = flat["weight"], flat["similarity_r"], flat["similarity_ratio"]
    expected = np.sqrt(np.sum(w * (1 + s**2 - 2 * r * s)) / w.sum()) / (np.sum(w * s) / w.sum())
    assert unc.within_factor(flat, 1.0) == pytest.approx(expected) and 5 < expected < 15


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
        # where the stations refined the layer, the calibration says it used the refinement's held-out errors
        refined = json.loads((results / "ensemble" / layer / "refinement.json").read_text())["applied"]
        said = cal.get("errors_from", pd.Series([None])).iloc[0] == "refinement without each station"
        assert said == refined
        # the held-out shifts the calibration read: one row a fitted station-day where applied, none where not
        shifts = pd.read_csv(results / "ensemble" / layer / "refinement_held_out.csv")
        fitted = json.loads((results / "ensemble" / layer / "refinement.json").read_text())["station_days"]
        assert len(shifts) == (fitted if refined else 0) and list(shifts.columns) == ["station", "date", "shift"]
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


SETTINGS = {"use_stations": True, "min_station_days": 30, "station_error": 0.0, "station_fit": "ab", "prior_weight": 0.0,
            "coarse_error": {"surface": 0.04, "rootzone": 0.03}, "within_factor": 0.25, "detail_window": 3}


def test_the_rule_step_scales_the_prior_by_the_stations(tmp_path):
    from smdown.mapping.uncertainty_steps import uncertainty

    paths, ensemble = _tiny_world(tmp_path, 12)
    out = tmp_path / "uncertainty.tif"
    settings = {**SETTINGS, "station_fit": "scale", "prior_weight": 3.0}  # the prior weighs as the 3 stations
    cal = uncertainty("surface", str(paths["ensemble"]), str(paths["ensemble_std"]), str(tmp_path / "weights.csv"),
                      str(paths["coarse"]), str(tmp_path / "split.json"), str(tmp_path / "stations.csv"), str(out),
                      str(tmp_path / "calibration.csv"), settings, max_pixels=12 * 9)
    c = cal.a / 0.04
    assert cal.source == "stations" and cal.b == 0 and cal.k == pytest.approx(0.25 * c)
    table = pd.read_csv(tmp_path / "calibration.csv")
    assert table["a"].iloc[0] == pytest.approx(cal.a) and table["k"].iloc[0] == pytest.approx(cal.k)
    detail = unc.local_detail(ensemble, 3)
    np.testing.assert_allclose(io.read_stack(out).data, np.sqrt(cal.a**2 + (cal.k * detail) ** 2 + 0.005**2), rtol=1e-5)
    no_prior = uncertainty("surface", str(paths["ensemble"]), str(paths["ensemble_std"]), str(tmp_path / "weights.csv"),
                           str(paths["coarse"]), str(tmp_path / "split.json"), str(tmp_path / "stations.csv"),
                           str(tmp_path / "u0.tif"), str(tmp_path / "c0.csv"), {**settings, "prior_weight": 0.0},
                           max_pixels=12 * 9)
    # the prior draws the scale towards 1: nearer to it than the stations' alone
    assert abs(c**2 - 1) < abs((no_prior.a / 0.04) ** 2 - 1)


@pytest.mark.parametrize("days, source", [(12, "stations"), (6, "prior")])
def test_the_rule_step_calibrates_on_stations_or_falls_back_to_the_prior(tmp_path, days, source):
    from smdown.mapping.uncertainty_steps import uncertainty

    paths, ensemble = _tiny_world(tmp_path, days)
    out = tmp_path / "uncertainty.tif"
    cal = uncertainty("surface", str(paths["ensemble"]), str(paths["ensemble_std"]), str(tmp_path / "weights.csv"),
                      str(paths["coarse"]), str(tmp_path / "split.json"), str(tmp_path / "stations.csv"), str(out),
                      str(tmp_path / "calibration.csv"), {**SETTINGS, "min_station_days": 30},
                      max_pixels=days * 9)  # one coarse cell a block: the detail's halo crosses the blocks
    table = pd.read_csv(tmp_path / "calibration.csv")
    assert cal.source == source == table["source"].iloc[0]
    sig = io.read_stack(out)
    assert sig.data.shape == ensemble.shape and np.isfinite(sig.data).all()
    detail = unc.local_detail(ensemble, 3)  # the whole field's: as if in one block
    assert cal.k == 0.25 == table["k"].iloc[0]  # no self-similarity check: within_factor, with both sources
    if source == "stations":  # 3 stations x 11 days outside the test day; errors of SD 0.03
        assert table["n"].iloc[0] == 33 and table["station_days"].iloc[0] == 33
        assert 0.015 < float(np.sqrt(np.mean(sig.data**2))) < 0.05
        np.testing.assert_allclose(sig.data, np.sqrt(cal.a**2 + (cal.b * ensemble) ** 2 + (0.25 * detail) ** 2 + 0.005**2),
                                   rtol=1e-5)
        # the detail at the stations' pixels is the map's
        from smdown.mapping.uncertainty_steps import station_detail
        from smdown.stations import station_series

        series = station_series({"ensemble": str(paths["ensemble"])}, str(tmp_path / "stations.csv"), "surface")
        dates = io.read_dates(paths["ensemble"])
        expected = detail[[dates.index(d) for d in series["date"]], series["row"], series["col"]]
        np.testing.assert_allclose(station_detail(str(paths["ensemble"]), series, 3), expected, atol=1e-7)
    else:  # 3 x 5 = 15 station-days are too few: a = coarse_error, k = within_factor (no self-similarity check)
        assert cal.a == 0.04
        np.testing.assert_allclose(sig.data, np.sqrt(0.04**2 + (0.25 * detail) ** 2 + 0.005**2), rtol=1e-5)


def test_the_error_model_learns_where_the_error_is_large_and_nothing_from_noise():
    """|error| grows with a soil-like value that differs between stations: the ridge finds it (a small penalty,
    a positive coefficient, sizes that follow the value on new pixels); an error of one size everywhere: the
    left-one-station-out choice takes the largest penalty and a nearly flat size."""
    rng = np.random.default_rng(4)
    stations, days = 20, 30
    station = np.repeat(np.arange(stations), days)
    soil = np.repeat(rng.uniform(0.0, 1.0, stations), days)
    other = rng.standard_normal(stations * days)  # a map that says nothing
    z = rng.standard_normal(stations * days)
    model, loso = unc.fit_error_model({"soil": soil, "other": other}, 0.01 + 0.05 * soil * z, station)
    assert model.names == ["soil", "other"] and model.coef[0] > 5 * abs(model.coef[1]) and model.alpha < 100
    assert np.isfinite(loso).all() and np.corrcoef(loso, soil)[0, 1] > 0.9
    new_soil = np.linspace(0.0, 1.0, 11)
    size = model.size({"soil": new_soil, "other": np.zeros(11)})
    assert size.dtype == np.float32 and np.all(np.diff(size) >= 0) and size[-1] > 3 * size[0]
    # its size at soil 1 is about the error's sd there (0.05), at 0 the floor (a quarter of the mean |error|) or,
    # where the stations' smallest soil value gives more, that: beyond the stations' range a value is clipped to it
    at_edges = model.size({"soil": np.array([soil.min(), soil.max()]), "other": np.zeros(2)})
    assert 0.035 < size[-1] < 0.065
    assert size[0] == pytest.approx(max(unc.SQRT_HALF_PI * model.floor, at_edges[0]), rel=1e-5)
    beyond = model.size({"soil": np.array([-5.0, 5.0]), "other": np.array([-1e3, 1e3])})
    inside = model.size({"soil": np.array([soil.min(), soil.max()]), "other": np.array([other.min(), other.max()])})
    np.testing.assert_allclose(beyond, inside, rtol=1e-6)
    flat, _ = unc.fit_error_model({"soil": soil, "other": other}, 0.03 * z, station)
    assert flat.alpha == max(unc.RIDGE_ALPHAS)
    spread_of_sizes = flat.size({"soil": new_soil, "other": np.zeros(11)})
    assert np.ptp(spread_of_sizes) < 0.1 * spread_of_sizes.mean()
    with pytest.raises(ValueError, match="2 station"):
        unc.fit_error_model({"soil": soil[:60]}, z[:60], station[:60])


def test_sigma_with_a_learned_model_is_its_size_and_the_spread_in_quadrature():
    model = unc.ErrorModel(["ensemble", "soil"], [0.2, 0.5], [0.1, 0.25], [0.01, -0.02], 0.03, 0.005, 1.0,
                           level=2.0)
    ensemble = np.array([[[0.2, 0.3, np.nan]]], np.float32)
    soil = np.array([[0.5, 1.0, 0.5]], np.float32)  # static: one map for every day
    spread = np.full_like(ensemble, 0.01)
    cal = unc.Calibration(a=0.0, source="stations", model=model)
    sig = unc.sigma(ensemble, spread, np.zeros_like(ensemble), cal, {"soil": soil})
    mean = np.array([0.03, 0.03 + 0.01 * 1.0 - 0.02 * 2.0])  # the second is below the floor
    expected = np.sqrt((2.0 * unc.SQRT_HALF_PI * np.maximum(mean, 0.005)) ** 2 + 0.01**2)
    np.testing.assert_allclose(sig[0, 0, :2], expected, rtol=1e-6)
    assert np.isnan(sig[0, 0, 2])
    row = cal.as_dict()
    assert row["model_features"] == "ensemble soil" and row["model_level"] == 2.0 and "model" not in row


def test_the_rule_step_learns_the_error_size_from_the_stations(tmp_path):
    """Errors at the stations grow with a static soil map: the learned calibration's map is the model's size at
    every pixel-day (read block by block with the soil raster) and the spread in quadrature."""
    from smdown.mapping.uncertainty_steps import uncertainty

    paths, ensemble = _tiny_world(tmp_path, 40)
    grid = io.read_grid(paths["ensemble"])
    soil = np.linspace(0.0, 1.0, 36, dtype=np.float32).reshape(1, 6, 6)
    io.write_stack(tmp_path / "soil.tif", io.Stack(soil, grid, None))
    # stations at pixels of low, middle and high soil, each error growing with it
    stations = pd.read_csv(tmp_path / "stations.csv")
    rng = np.random.default_rng(2)
    sites = {"s0": (1, 1), "s1": (4, 2), "s2": (2, 5)}
    dates = io.read_dates(paths["ensemble"])
    for name, (row, col) in sites.items():
        at = stations["station"] == name
        t = [dates.index(d) for d in stations.loc[at, "date"]]
        stations.loc[at, "surface"] = ensemble[t, row, col] + 0.1 * soil[0, row, col] * rng.standard_normal(at.sum())
    stations.to_csv(tmp_path / "stations.csv", index=False)
    settings = {**SETTINGS, "station_fit": {"surface": "learned", "rootzone": "scale"}, "prior_weight": 3.0}
    out = tmp_path / "uncertainty.tif"
    cal = uncertainty("surface", str(paths["ensemble"]), str(paths["ensemble_std"]), str(tmp_path / "weights.csv"),
                      str(paths["coarse"]), str(tmp_path / "split.json"), str(tmp_path / "stations.csv"), str(out),
                      str(tmp_path / "calibration.csv"), settings, max_pixels=40 * 9,
                      rasters={"soil": str(tmp_path / "soil.tif")})
    assert cal.source == "stations" and cal.model is not None and cal.model.level > 0
    assert cal.model.names == ["ensemble", "detail", "spread", "soil"]
    table = pd.read_csv(tmp_path / "calibration.csv")
    assert table["station_fit"].iloc[0] == "learned" and table["model_features"].iloc[0] == "ensemble detail spread soil"
    detail = unc.local_detail(ensemble, 3)
    size = cal.model.size({"ensemble": ensemble, "detail": detail, "spread": np.full_like(ensemble, 0.005),
                           "soil": np.broadcast_to(soil, ensemble.shape)})
    np.testing.assert_allclose(io.read_stack(out).data, np.sqrt(size**2 + 0.005**2), rtol=1e-5)
    sig = io.read_stack(out).data
    assert sig[:, 5, 5].mean() > sig[:, 0, 0].mean()  # wider where the soil value is high


def test_learned_with_too_few_stations_scales_the_prior_instead(tmp_path, caplog):
    from smdown.mapping.uncertainty_steps import uncertainty

    paths, _ = _tiny_world(tmp_path, 40)
    stations = pd.read_csv(tmp_path / "stations.csv")
    stations[stations["station"] != "s2"].to_csv(tmp_path / "stations.csv", index=False)  # 2 stations left
    settings = {**SETTINGS, "station_fit": "learned", "prior_weight": 3.0}
    with caplog.at_level("WARNING"):
        cal = uncertainty("surface", str(paths["ensemble"]), str(paths["ensemble_std"]), str(tmp_path / "weights.csv"),
                          str(paths["coarse"]), str(tmp_path / "split.json"), str(tmp_path / "stations.csv"),
                          str(tmp_path / "u.tif"), str(tmp_path / "c.csv"), settings, max_pixels=40 * 9,
                          rasters={})
    assert cal.model is None and cal.source == "stations" and cal.a > 0
    assert pd.read_csv(tmp_path / "c.csv")["station_fit"].iloc[0] == "scale"
    assert "2 station(s), fewer than the 3" in caplog.text


def test_learned_without_other_maps_uses_the_ensemble_its_detail_and_spread(tmp_path):
    from smdown.mapping.uncertainty_steps import uncertainty

    paths, ensemble = _tiny_world(tmp_path, 40)
    cal = uncertainty("surface", str(paths["ensemble"]), str(paths["ensemble_std"]), str(tmp_path / "weights.csv"),
                      str(paths["coarse"]), str(tmp_path / "split.json"), str(tmp_path / "stations.csv"),
                      str(tmp_path / "u.tif"), str(tmp_path / "c.csv"), {**SETTINGS, "station_fit": "learned"},
                      max_pixels=40 * 9)
    assert cal.model.names == ["ensemble", "detail", "spread"]
    assert io.read_stack(tmp_path / "u.tif").data.shape == ensemble.shape


def test_the_map_of_each_tile_from_the_saved_calibration_is_the_whole_regions(tmp_path):
    """Rule calibrate_uncertainty saves the learned calibration whole (calibration.json) and rule uncertainty writes
    one tile at a time from it: the four one-cell tiles, merged, are bitwise the whole region's map (the detail's
    halo reads across the tiles' edges)."""
    from smdown.grid import tiles
    from smdown.mapping.uncertainty_steps import read_calibration, uncertainty, uncertainty_map

    paths, ensemble = _tiny_world(tmp_path, 40)
    grid = io.read_grid(paths["ensemble"])
    soil = np.linspace(0.0, 1.0, 36, dtype=np.float32).reshape(1, 6, 6)
    io.write_stack(tmp_path / "soil.tif", io.Stack(soil, grid, None))
    rasters = {"soil": str(tmp_path / "soil.tif")}
    whole = tmp_path / "whole.tif"
    cal = uncertainty("surface", str(paths["ensemble"]), str(paths["ensemble_std"]), str(tmp_path / "weights.csv"),
                      str(paths["coarse"]), str(tmp_path / "split.json"), str(tmp_path / "stations.csv"), str(whole),
                      str(tmp_path / "calibration.csv"), {**SETTINGS, "station_fit": "learned"}, rasters=rasters)
    saved = read_calibration(str(tmp_path / "calibration.json"))
    assert saved == cal and saved.model is not None
    parts = []
    for tile in tiles((2, 2), 1):
        parts.append(tmp_path / f"{tile.name}.tif")
        uncertainty_map(saved, str(paths["ensemble"]), str(paths["ensemble_std"]), str(paths["coarse"]),
                        str(parts[-1]), SETTINGS["detail_window"], rasters,
                        tile=[tile.row, tile.col, tile.rows, tile.cols])
        assert io.read_grid(parts[-1]) == grid.window(*tile.fine(3))
    io.merge(parts, tmp_path / "merged.tif")
    merged, expected = io.read_stack(tmp_path / "merged.tif"), io.read_stack(whole)
    assert merged.grid == expected.grid and merged.dates == expected.dates
    assert np.array_equal(merged.data, expected.data, equal_nan=True)
    assert np.isfinite(expected.data).all() and expected.data.std() > 0

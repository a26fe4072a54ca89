"""Every figure writes a non-empty PNG; the map figure shows what its panels and colour bars say."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from smdown.evaluating import plots
from smdown.evaluating.metrics import Z90

PNG = b"\x89PNG"


def check(path):
    assert path.exists() and path.stat().st_size > 1000
    assert path.read_bytes()[:4] == PNG


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def _panels(rng):
    fine = 0.2 + 0.1 * rng.random((6, 6))
    return {d: {"coarse": fine.reshape(2, 3, 2, 3).mean(axis=(1, 3)), "ensemble": fine,
                "uncertainty": 0.01 + 0.01 * rng.random((6, 6)), "truth": fine + 0.01}
            for d in ("2023-05-01", "2023-05-02")}


def _series():
    dates = pd.date_range("2023-05-01", periods=5).strftime("%Y-%m-%d")
    one = pd.DataFrame({"date": dates, "coarse": 0.2, "ensemble": [0.20, 0.22, 0.25, 0.21, 0.2],
                        "uncertainty": [0.01, 0.02, 0.03, 0.02, 0.01], "observed": [0.21, np.nan, 0.26, 0.2, 0.19]})
    # S2 has 4 observations, S1 3 and S3 4: the most observed, first by name, is S2
    return pd.concat([one.assign(station="S1", observed=[0.2, np.nan, np.nan, 0.2, 0.2]), one.assign(station="S2"),
                      one.assign(station="S3")], ignore_index=True)


def test_maps(tmp_path, rng):
    panels = _panels(rng)
    panels["2023-05-02"]["ensemble"][0, 0] = np.nan
    check(plots.plot_maps(panels, tmp_path / "maps.png", title="surface", series=_series()))
    check(plots.plot_maps({"2023-05-01": {"coarse": np.ones((2, 2)), "ensemble": np.ones((6, 6))}},
                          tmp_path / "maps2.png"))


def test_maps_have_a_colour_bar_per_column_and_draw_the_90_percent_half_width(rng):
    panels = _panels(rng)
    fig = plots.maps_figure(panels, series=None)
    bars = [ax for ax in fig.axes if ax.get_xlabel().endswith("(m³/m³)")]
    assert [ax.get_xlabel() for ax in bars] == ["soil moisture (m³/m³)", "soil moisture (m³/m³)",
                                               "90 % half-width (m³/m³)", "soil moisture (m³/m³)"]
    uncertainty = [ax for ax in fig.axes if ax.get_title() == "uncertainty (90 %)"][0]
    np.testing.assert_allclose(uncertainty.images[0].get_array(), Z90 * panels["2023-05-01"]["uncertainty"],
                               rtol=1e-6)
    assert uncertainty.images[0].get_clim()[0] == 0.0
    # soil-moisture columns share one range, so coarse, ensemble and truth compare by eye
    sm = [ax.images[0].get_clim() for ax in fig.axes if ax.get_title() in ("coarse input", "truth (30 m)")]
    assert len(sm) == 2 and sm[0] == sm[1]
    plt.close(fig)


def test_maps_end_with_the_most_observed_station_and_its_90_percent_interval(rng):
    fig = plots.maps_figure(_panels(rng), series=_series())
    station = [ax for ax in fig.axes if ax.get_title(loc="left").startswith("station")][0]
    assert station.get_title(loc="left").startswith("station S2")
    labels = [t.get_text() for t in station.get_legend().get_texts()]
    assert labels == ["coarse input", "ensemble", "90 % interval", "station S2"]
    band = station.collections[0].get_paths()[0].vertices[:, 1]
    rows = _series().query("station == 'S2'")
    np.testing.assert_allclose([band.min(), band.max()],
                               [(rows.ensemble - Z90 * rows.uncertainty).min(),
                                (rows.ensemble + Z90 * rows.uncertainty).max()], rtol=1e-6)
    plt.close(fig)


def test_no_station_panel_without_an_observation():
    series = _series().assign(observed=np.nan)
    assert plots.station_panel(series) is None
    assert plots.station_panel(series.iloc[:0]) is None


def test_scatter(tmp_path, rng):
    ref = rng.random(500)
    pairs = pd.concat([pd.DataFrame({"method": m, "pred": ref + rng.normal(0, s, 500), "ref": ref})
                       for m, s in (("cubic", 0.1), ("dnn", 0.05), ("ensemble", 0.03))])
    check(plots.plot_scatter(pairs, tmp_path / "scatter.png", reference="truth", title="surface vs truth"))
    check(plots.plot_scatter(pairs.iloc[:0], tmp_path / "empty.png"))


def test_station_series(tmp_path, rng):
    dates = pd.date_range("2023-05-01", periods=20).strftime("%Y-%m-%d")
    series = pd.concat([pd.DataFrame({"station": s, "date": dates, "observed": rng.random(20),
                                      "coarse": rng.random(20), "ensemble": rng.random(20),
                                      "ensemble_std": 0.02 * rng.random(20),
                                      "uncertainty": 0.04 * rng.random(20)}) for s in ("A", "B")])
    check(plots.plot_station_series(series, tmp_path / "stations.png", title="surface"))
    check(plots.plot_station_series(pd.DataFrame(), tmp_path / "none.png"))


def test_metric_bars(tmp_path, rng):
    rows = [{"layer": layer, "method": m, "reference": ref, "r": rng.random(), "bias": rng.normal(),
             "rmse": rng.random(), "ubrmse": rng.random(), "n": 10, "anomaly_r": np.nan if m == "cubic" else 0.5,
             "kge": rng.random()}
            for layer in ("surface", "rootzone") for m in ("dnn", "cnn", "lstm", "ensemble", "rf", "cubic")
            for ref in ("truth", "coarse")]
    metrics = pd.DataFrame(rows)
    check(plots.plot_metric_bars(metrics, tmp_path / "bars.png"))
    check(plots.plot_metric_bars(metrics[metrics["layer"] == "surface"], tmp_path / "bars_surface.png"))


def test_training_curves(tmp_path):
    h = pd.DataFrame({"epoch": range(10), "loss": np.linspace(1, 0.1, 10), "val_loss": np.linspace(1.2, 0.2, 10)})
    check(plots.plot_training_curves({"dnn": h, "cnn": h, "lstm": h}, tmp_path / "training.png", title="surface"))
    check(plots.plot_training_curves({}, tmp_path / "none.png"))


def test_sensitivity(tmp_path):
    features = ["precipitation", "ndvi", "dem", "sand", "doy"]
    imp = pd.DataFrame([{"model": m, "feature": f, "importance": 0.01 * (i + 1) * (j + 1), "importance_std": 0.001}
                        for j, m in enumerate(("dnn", "cnn", "lstm")) for i, f in enumerate(features)])
    curves = pd.DataFrame([{"model": m, "feature": f, "value": v, "prediction": 0.2 + 0.01 * v * (i - 2)}
                           for m in ("dnn", "cnn", "lstm") for i, f in enumerate(features) for v in range(10)])
    check(plots.plot_sensitivity(imp, curves, tmp_path / "sens.png", title="surface"))
    check(plots.plot_sensitivity(imp[imp["model"] == "dnn"].drop(columns="model"),
                                 curves[curves["model"] == "dnn"].drop(columns="model"), tmp_path / "one.png"))


def test_reliability_of_both_standard_deviations(tmp_path, rng):
    bins = pd.DataFrame([{"layer": layer, "method": "ensemble", "reference": ref, "spread": spread, "std_lo": lo,
                          "std_hi": lo * 2, "n": 100, "rms_std": lo * 1.5, "rmse": lo * (1.5 if spread == "uncertainty"
                                                                                             else 5)}
                         for layer in ("surface", "rootzone") for ref in ("truth", "stations")
                         for spread in ("ensemble_std", "uncertainty") for lo in (0.005, 0.01, 0.02)])
    coverage = {f"coverage_{p}": p / 100 for p in (50, 68, 80, 90, 95, 99)}
    table = pd.DataFrame([{"layer": layer, "method": "ensemble", "reference": ref, "spread": spread, **coverage}
                          for layer in ("surface", "rootzone") for ref in ("truth", "stations")
                          for spread in ("ensemble_std", "uncertainty")])
    check(plots.plot_reliability(bins, table, tmp_path / "reliability.png"))
    # tables of an older evaluation (no spread column) still draw
    check(plots.plot_reliability(bins.drop(columns="spread"), table.drop(columns="spread"), tmp_path / "old.png"))
    check(plots.plot_reliability(pd.DataFrame(), pd.DataFrame(), tmp_path / "empty.png"))

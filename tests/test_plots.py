"""Every figure writes a non-empty PNG."""

import numpy as np
import pandas as pd
import pytest

from smdown import plots

PNG = b"\x89PNG"


def check(path):
    assert path.exists() and path.stat().st_size > 1000
    assert path.read_bytes()[:4] == PNG


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_maps(tmp_path, rng):
    fine = 0.2 + 0.1 * rng.random((6, 6))
    panels = {d: {"coarse": fine.reshape(2, 3, 2, 3).mean(axis=(1, 3)), "ensemble": fine,
                  "ensemble_std": 0.01 * rng.random((6, 6)), "truth": fine + 0.01}
              for d in ("2023-05-01", "2023-05-02")}
    panels["2023-05-02"]["ensemble"][0, 0] = np.nan
    check(plots.plot_maps(panels, tmp_path / "maps.png", title="surface"))
    check(plots.plot_maps({"2023-05-01": {"coarse": np.ones((2, 2)), "ensemble": np.ones((6, 6))}},
                          tmp_path / "maps2.png"))


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

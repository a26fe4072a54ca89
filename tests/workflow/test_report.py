"""End to end: a tiny run through every rule, then `snakemake --report`.

The world is the demo world at 2x2 coarse cells with a fine grid of 10 subdivisions (about 900 m),
given to the workflow as the user's own rasters (`inputs:`, the data contract), with the truth on the
finest scale's grid. Scales 3000 and 900 m nest as factors 3 and 10 in the 9 km cell.
"""

import pandas as pd
import pytest
from conftest import TINY_LAYERS

LAYERS = TINY_LAYERS
METHODS = ["dnn", "cnn", "lstm", "ensemble", "rf", "cubic"]
REFERENCES = ["truth", "stations", "coarse"]


@pytest.mark.workflow
def test_metrics_have_every_method_reference_and_layer(tiny_run):
    _, results, _ = tiny_run
    metrics = pd.read_csv(results / "evaluation" / "metrics.csv")
    got = set(zip(metrics["layer"], metrics["method"], metrics["reference"], strict=True))
    want = {(layer, m, ref) for layer in LAYERS for m in METHODS for ref in REFERENCES}
    assert want <= got, sorted(want - got)
    assert len(metrics) == len(got), "duplicate metric rows"
    coarse = metrics[metrics["reference"] == "coarse"]
    assert (coarse["n"] > 0).all()
    # the correction pins the ensemble's and the corrected cubic's cell means to the same anchor (by default the
    # cubic field's cell means), so both are equally far from the coarse input, and that not by much
    by_method = coarse.set_index(["layer", "method"])["rmse"]
    for layer in LAYERS:
        assert abs(by_method[layer, "ensemble"] - by_method[layer, "cubic_corrected"]) < 1e-3, by_method
        assert by_method[layer, "ensemble"] < 0.05, by_method
    for name in ("pairs.csv", "station_series.csv"):
        assert (results / "evaluation" / name).stat().st_size > 0


@pytest.mark.workflow
def test_sensitivity_tables(tiny_run):
    _, results, _ = tiny_run
    for layer in LAYERS:
        importance = pd.read_csv(results / "sensitivity" / layer / "importance.csv")
        response = pd.read_csv(results / "sensitivity" / layer / "response.csv")
        assert set(importance["model"]) == {"dnn", "cnn", "lstm", "rf"}
        assert set(response["model"]) == {"dnn", "cnn", "lstm", "rf"}
        features = importance.groupby("model")["feature"].nunique()
        assert features.nunique() == 1 and features.iloc[0] > 5
        assert (response.groupby(["model", "feature"]).size() == 4).all()
        assert importance["n"].between(1, 60).all()


@pytest.mark.workflow
def test_report_holds_every_figure(tiny_run):
    workdir, results, report = tiny_run
    pngs = sorted(results.rglob("*.png"))
    figures = results / "evaluation" / "figures"
    expected = [figures / "metrics.png", figures / "reliability.png"] + [results / "sensitivity" / layer / "sensitivity.png" for layer in LAYERS]
    expected += [figures / f"{layer}_{kind}.png" for layer in LAYERS
                 for kind in ["maps", "training", "stations"] + [f"scatter_{r}" for r in REFERENCES]]
    assert sorted(expected) == pngs
    html = report.read_text(errors="replace")
    for png in pngs:
        name = png.relative_to(workdir).as_posix()
        assert name in html, f"{name} is not in the report"
    assert "results/tiny/evaluation/metrics.csv" in html

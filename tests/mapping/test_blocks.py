"""Block prediction: compiled members against Keras `predict`, the in-place correction and combination against their
reference formulas, the threaded pipeline against the sequential one, peers predicted only on request (the random
forest in a job of its own), and the two-pass smooth correction against the whole-region one."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine
from conftest import PREDICT_SETTINGS

from smdown import io
from smdown.grid import Grid, block_expand, block_mean, nested_grid
from smdown.learning import ensemble, models
from smdown.mapping import correction, inference
from smdown.mapping.blocks import coarse_correction, predict_layer
from smdown.preparing.features import FeatureSpec

HP = {"dnn_units": [8], "cnn_filters": [4], "lstm_units": 3, "dropout": 0.0, "learning_rate": 0.01, "l2": 0.0}
COARSE = Grid("EPSG:6933", Affine(9000.0, 0, 0.0, 0, -9000.0, 900000.0), 2, 2)
DATES = [f"2023-05-{d:02d}" for d in range(1, 7)]


def _member(kind: str, n_features: int = 2, seed: int = 0) -> models.Member:
    import keras

    keras.utils.set_random_seed(seed)
    model = models.build(kind, n_features, np.zeros(n_features), np.ones(n_features), HP)
    return models.Member(kind, model, {"patch": 3, "sequence_days": 3})


class _Forest:
    """A stand-in random forest: a known function of the features, counting its calls."""

    def __init__(self):
        self.calls = 0

    def predict(self, x):
        self.calls += 1
        return 0.1 + 0.2 * x[:, 0] + 0.05 * x[:, 1]


def _reference_cube(member: models.Member, cube: np.ndarray, halo: int) -> np.ndarray:
    """The member on a block through Keras `predict` (the code before compiled prediction)."""
    days, height, width = cube.shape[0], cube.shape[1] - 2 * halo, cube.shape[2] - 2 * halo
    core = cube[:, halo : halo + height, halo : halo + width]
    if member.name == "cnn":
        inner = member.halo
        trimmed = cube[:, halo - inner : halo + height + inner, halo - inner : halo + width + inner]
        return member.model.predict(trimmed, verbose=0)[..., 0]
    if member.name == "dnn":
        return member.model.predict(core.reshape(-1, cube.shape[-1]), verbose=0).reshape(days, height, width)
    spin = member.meta["sequence_days"] - 1
    series = core.reshape(days, -1, cube.shape[-1]).transpose(1, 0, 2)
    series = np.concatenate([np.repeat(series[:, :1], spin, axis=1), series], axis=1)
    return member.model.predict(series, verbose=0)[:, spin:, 0].T.reshape(days, height, width)


@pytest.mark.parametrize("engine", ["numpy", "onnx", "tensorflow"])
@pytest.mark.parametrize("kind", ["dnn", "cnn", "lstm", "lstm_static"])
def test_compiled_member_equals_keras_predict_with_padded_chunks(kind, engine, monkeypatch):
    # numpy (the default): the LSTM by the kernel numba compiles, the others by ONNX Runtime; onnx: all by ONNX Runtime
    # chunks that do not divide the block, so that the last one is padded (TensorFlow) or shorter (ONNX Runtime)
    monkeypatch.setattr(inference, "CHUNK_ROWS", 37)
    monkeypatch.setattr(inference, "CHUNK_DAYS", 4)
    monkeypatch.setattr(inference, "CHUNK_SERIES", 7)
    monkeypatch.setattr(inference, "ROWS", 37)
    monkeypatch.setattr(inference, "DAYS", 4)
    monkeypatch.setattr(inference, "SERIES", 7)
    monkeypatch.setenv("SMDOWN_INFERENCE", engine)
    if kind == "lstm_static":  # the second feature static: it joins the LSTM's memory in the dense head
        import keras

        keras.utils.set_random_seed(0)
        model = models.with_units(models.build("lstm", 2, np.array([0.5, -1.0]), np.array([2.0, 0.5]), HP,
                                               n_dynamic=1), 0.2, 0.05)
        member = models.Member("lstm", model, {"patch": 3, "sequence_days": 3})
    else:
        member = _member(kind)
    built = inference.member_plan(member, threads=2)
    assert (built is not None) == (engine != "tensorflow")
    if built is not None and kind.startswith("lstm"):
        assert (built.recurrent is not None) == (engine == "numpy")
    cube = np.random.default_rng(1).normal(size=(6, 9, 8, 2)).astype(np.float32)
    out = inference.predict_cube(member, cube, halo=1, threads=2)
    assert out.dtype == np.float32 and out.shape == (6, 7, 6)
    np.testing.assert_allclose(out, _reference_cube(member, cube, 1), atol=1e-6)


def test_member_of_another_shape_or_a_failing_session_is_predicted_by_tensorflow(monkeypatch):
    import keras

    def broken(model):
        raise RuntimeError("no session")

    with monkeypatch.context() as patched:
        patched.setattr(inference, "_session", broken)
        assert inference.plan("dnn", _member("dnn").model) is None

    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Dense(4, activation="tanh")(inputs)))
    member = models.Member("dnn", model, {"patch": 3, "sequence_days": 3})
    assert inference.plan("dnn", model) is None and inference.member_plan(member) is None
    cube = np.random.default_rng(2).normal(size=(2, 3, 3, 2)).astype(np.float32)
    np.testing.assert_allclose(inference.predict_cube(member, cube, halo=0, threads=2), _reference_cube(member, cube, 0), atol=1e-6)


@pytest.mark.parametrize("engine", ["onnx", "tensorflow"])
def test_forest_on_onnx_runtime_equals_scikit_learn(engine, monkeypatch):
    from sklearn.ensemble import RandomForestRegressor

    monkeypatch.setattr(inference, "ROWS", 37)  # pieces that do not divide the block
    monkeypatch.setenv("SMDOWN_INFERENCE", engine)  # tensorflow: the reference path, scikit-learn for the forest
    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 3))
    forest = RandomForestRegressor(n_estimators=7, max_depth=6, random_state=0).fit(x, np.sin(x[:, 0]) + x[:, 1] * x[:, 2])
    member = models.Member("rf", forest, {"patch": 3, "sequence_days": 3})
    assert (inference.member_plan(member, threads=2) is not None) == (engine == "onnx")
    cube = rng.normal(size=(5, 9, 8, 3)).astype(np.float32)
    cube[2, 4, 4, 1] = np.nan
    out = inference.predict_cube(member, cube, halo=1, threads=2)
    expected = forest.predict(cube[:, 1:-1, 1:-1].reshape(-1, 3)).reshape(5, 7, 6)
    assert out.dtype == np.float32 and out.shape == (5, 7, 6)
    assert np.isnan(out[2, 3, 3]) and np.isfinite(np.delete(out.ravel(), np.ravel_multi_index((2, 3, 3), out.shape))).all()
    expected[2, 3, 3] = np.nan
    np.testing.assert_allclose(out, expected, atol=1e-6)
    with monkeypatch.context() as patched:  # no compiled trees and a failing session: scikit-learn predicts
        patched.setenv("SMDOWN_INFERENCE", "onnx")
        patched.setattr(inference, "_session", lambda model: (_ for _ in ()).throw(RuntimeError("no session")))
        assert inference.forest_plan(forest) is None


@pytest.mark.parametrize("pixels", [7, 1024])
def test_compiled_trees_give_scikit_learns_numbers(pixels, monkeypatch):
    """The compiled trees (numba) against scikit-learn, the same float32 numbers: a forest of more than 64 leaves a
    tree (several mask words), a block with a halo (a strided view), static features (the same every day), a feature
    constant over the pixels each day (day of year), one varying everywhere, a NaN, pieces that do not divide the
    block, two threads."""
    pytest.importorskip("numba")
    from sklearn.ensemble import RandomForestRegressor

    monkeypatch.setattr(inference, "PIXELS", pixels)
    monkeypatch.delenv("SMDOWN_INFERENCE", raising=False)
    rng = np.random.default_rng(4)
    x = rng.normal(size=(3000, 4))
    y = np.sin(2 * x[:, 0]) + x[:, 1] * x[:, 2] - 0.3 * x[:, 3] + 0.1 * rng.normal(size=len(x))
    forest = RandomForestRegressor(n_estimators=9, random_state=0).fit(x, y)
    assert max(int((t.tree_.children_left == -1).sum()) for t in forest.estimators_) > 128
    member = models.Member("rf", forest, {"patch": 3, "sequence_days": 3})
    built = inference.member_plan(member, threads=2)
    assert built is not None and built.forest is not None and built.session is None
    days, height, width = 6, 11, 10
    cube = np.empty((days, height, width, 4), np.float32)
    cube[..., 0] = rng.normal(size=(days, height, width))  # varying every pixel-day
    cube[..., 1] = rng.normal(size=(days, 1, 1))  # one value a day
    cube[..., 2] = rng.normal(size=(height, width))  # static
    cube[..., 3] = rng.normal(size=(height, width))
    cube[..., 3] = np.round(cube[..., 3], 1)  # static, on few values
    cube[3, 5, 5, 0] = np.nan
    out = inference.predict_cube(member, cube, halo=2, threads=2)
    expected = forest.predict(np.nan_to_num(cube[:, 2:-2, 2:-2]).reshape(-1, 4)).astype(np.float32)
    expected = expected.reshape(days, height - 4, width - 4)
    expected[3, 3, 3] = np.nan
    np.testing.assert_array_equal(out, expected)
    # values on the thresholds themselves go left, as in scikit-learn
    rows = np.array([[t.tree_.threshold[0]] * 4 for t in forest.estimators_], np.float32)
    got = np.empty(len(rows), np.float32)
    built.dense_rows(rows, got)
    np.testing.assert_array_equal(got, forest.predict(rows).astype(np.float32))


def test_forest_falls_back_to_onnx_runtime_where_the_compiled_trees_fail(monkeypatch):
    pytest.importorskip("numba")
    from sklearn.ensemble import RandomForestRegressor

    from smdown.mapping import trees

    monkeypatch.delenv("SMDOWN_INFERENCE", raising=False)
    x = np.random.default_rng(5).normal(size=(200, 2))
    forest = RandomForestRegressor(n_estimators=3, max_depth=4, random_state=0).fit(x, x[:, 0])
    monkeypatch.setattr(trees, "Forest", lambda model: (_ for _ in ()).throw(RuntimeError("no compiler")))
    built = inference.forest_plan(forest)
    assert built is not None and built.forest is None and built.session is not None


@pytest.mark.parametrize("static_days", ["constant", "varying"])
def test_compiled_lstm_kernel_equals_onnx_runtimes_lstm_on_a_wide_model(static_days, monkeypatch):
    """The kernel numba compiles against ONNX Runtime's LSTM (itself checked against Keras above) on a model of the
    workflow's width (16 units, a head of 32 and 32: the kernel's passes of four outputs by four inputs, inputs
    padded to a multiple of four), 5 dynamic and 4 static features, a block with a halo (a strided view), pieces
    that do not divide it; static features the same every day (their share of the head computed once a pixel) or
    not (day by day)."""
    pytest.importorskip("numba")
    pytest.importorskip("onnxruntime")
    from smdown.mapping import recurrent

    monkeypatch.setattr(inference, "SERIES", 50)
    rng = np.random.default_rng(6)
    n_features, n_dynamic, units = 9, 5, 16
    kernel = np.zeros((4 * units, n_features), np.float32)
    kernel[:, :n_dynamic] = rng.normal(size=(4 * units, n_dynamic)) * 0.5
    static = np.zeros((n_features, 32), np.float32)
    static[n_dynamic:] = rng.normal(size=(n_features - n_dynamic, 32)) * 0.3
    layers = [inference.Dense(*(rng.normal(size=s).astype(np.float32) * 0.3 for s in [(units, 32), (32,)]), True),
              inference.Dense(*(rng.normal(size=s).astype(np.float32) * 0.2 for s in [(32, 32), (32,)]), True),
              inference.Dense(*(rng.normal(size=s).astype(np.float32) * 0.2 for s in [(32, 1), (1,)]), False)]
    lstm = {"units": units, "kernel": kernel, "recurrent": (rng.normal(size=(4 * units, units)) * 0.3).astype(np.float32),
            "bias": (rng.normal(size=4 * units) * 0.2).astype(np.float32), "static": static}
    reference = inference.Plan("lstm", layers=layers, lstm=lstm, spin=4, threads=2)
    reference.session = inference._session(inference._graph(reference, n_features))
    compiled = inference.Plan("lstm", layers=layers, lstm=lstm, spin=4, threads=2,
                              recurrent=recurrent.Recurrent(lstm, layers))
    days, height, width = 7, 9, 23
    block = (rng.normal(size=(days, height, width + 2, n_features)) * 2).astype(np.float32)
    if static_days == "constant":
        block[..., n_dynamic:] = block[:1, ..., n_dynamic:]
    band = block[:, 2:-2].reshape(days, -1, n_features)  # whole rows of the block, halo columns included
    expected, got = (np.empty(band.shape[:2], np.float32) for _ in range(2))
    reference.series(band, expected)
    compiled.series(band, got)
    assert np.ptp(expected) > 0.5
    np.testing.assert_allclose(got, expected, atol=5e-6)


def test_batched_calls_one_shape_and_keeps_the_rows():
    shapes = []

    def fn(x):
        shapes.append(x.shape)
        return x[:, :1] * 2

    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    out = inference._batched(fn, x, 4)
    assert shapes == [(4, 2)] * 3
    np.testing.assert_array_equal(out[:, 0], x[:, 0] * 2)


def test_rf_predict_nan_rows_only_where_a_feature_is_nan():
    x = np.array([[0.5, 1.0], [np.nan, 1.0], [1.0, 0.0]], dtype=np.float32)
    out = models.rf_predict(_Forest(), x)
    np.testing.assert_allclose(out[[0, 2]], [0.1 + 0.1 + 0.05, 0.3], atol=1e-7)
    assert np.isnan(out[1]) and out.dtype == np.float32


def test_coarse_correction_in_place_equals_the_block_formula():
    rng = np.random.default_rng(2)
    pred = rng.random((3, 6, 9)).astype(np.float32)
    pred[0, :3, :3] = np.nan  # a cell without a finite pixel keeps its (NaN) estimate
    pred[1, 4, 7] = np.nan
    coarse = rng.random((3, 2, 3)).astype(np.float32)
    coarse[2, 1, 2] = np.nan  # no coarse value: the estimate is kept
    delta = coarse - block_mean(pred, 3)
    expected = pred + block_expand(np.where(np.isfinite(delta), delta, 0.0).astype(np.float32), 3)
    same = pred.copy()
    out = coarse_correction(same, coarse, 3, out=same)
    assert out is same
    np.testing.assert_allclose(out, expected, atol=1e-6)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(expected))
    np.testing.assert_allclose(block_mean(out, 3)[1], coarse[1], atol=1e-6)
    np.testing.assert_array_equal(out[2, 3:, 6:], pred[2, 3:, 6:])


def test_combine_is_the_weighted_mean_and_spread_of_the_finite_members():
    rng = np.random.default_rng(3)
    fields = {name: rng.random((4, 5, 6)).astype(np.float32) for name in ("a", "b", "c")}
    fields["a"][0, 0, :3] = np.nan
    fields["b"][0, 0, :2] = np.nan
    fields["c"][0, 0, :1] = np.nan  # pixel (0, 0, 0): no member -> NaN
    weights = {"a": 0.5, "b": 0.3, "c": 0.2}
    mean, spread = ensemble.combine({k: v.copy() for k, v in fields.items()}, weights)
    assert mean.dtype == spread.dtype == np.float32
    stack = np.ma.masked_invalid(np.stack([fields[n] for n in weights]).astype(np.float64))
    w = np.broadcast_to(np.array(list(weights.values()))[:, None, None, None], stack.shape)
    ref_mean = np.ma.average(stack, axis=0, weights=w)
    ref_spread = np.sqrt(np.ma.average((stack - ref_mean) ** 2, axis=0, weights=w))
    ok = ~np.ma.getmaskarray(ref_mean)
    np.testing.assert_allclose(mean[ok], ref_mean[ok], atol=1e-6)
    np.testing.assert_allclose(spread[ok], ref_spread[ok], atol=1e-6)
    assert np.isnan(mean[0, 0, 0]) and np.isfinite(mean[0, 0, 1]) and np.isnan(mean[~ok]).all()
    # a member with no weight changes nothing
    zero, _ = ensemble.combine(fields, {**weights, "c": 0.0})
    np.testing.assert_allclose(zero[1:], ensemble.combine(fields, {"a": 0.5, "b": 0.3})[0][1:], atol=1e-6)


def _world(tmp_path):
    factor = 4
    fine_grid = nested_grid(COARSE, factor)
    rng = np.random.default_rng(5)
    rasters = {}
    for name, static in (("x1", False), ("x0", True)):
        data = rng.random((1 if static else len(DATES), 8, 8)).astype(np.float32)
        if name == "x1":
            data[2, 6, 1] = np.nan
        rasters[name] = str(tmp_path / f"{name}.tif")
        io.write_stack(rasters[name], io.Stack(data, fine_grid, None if static else DATES))
    coarse_path = str(tmp_path / "coarse.tif")
    io.write_stack(coarse_path, io.Stack(rng.uniform(0.1, 0.4, (len(DATES), 2, 2)).astype(np.float32), COARSE, DATES))
    return rasters, coarse_path, factor


def test_threaded_pipeline_equals_sequential_and_rf_runs_only_on_request(tmp_path):
    rasters, coarse_path, factor = _world(tmp_path)
    spec = FeatureSpec(("x1",), ("x0",), (), False)
    forest = _Forest()
    members = {"dnn": _member("dnn", seed=1), "cnn": _member("cnn", seed=2), "lstm": _member("lstm", seed=3),
               "rf": models.Member("rf", forest, {})}
    weights = {"dnn": 0.5, "cnn": 0.25, "lstm": 0.25}
    results = {}
    for overlap in (True, False):
        outputs = {name: str(tmp_path / f"{name}_{overlap}.tif") for name in ["dnn", "cnn", "lstm", "rf", "ensemble",
                                                                               "ensemble_std"]}
        timings = {}
        _predict_layer(members, weights, spec, rasters, coarse_path, factor, outputs, block_cells=1,
                      timings=timings, overlap=overlap)
        results[overlap] = {name: io.read_stack(path).data for name, path in outputs.items()}
        assert {"read", "dnn", "cnn", "lstm", "rf", "correction", "ensemble", "write"} <= set(timings)
    assert forest.calls == 8  # 4 blocks, twice
    for name, data in results[True].items():
        np.testing.assert_array_equal(data, results[False][name], err_msg=name)
    assert np.isnan(results[True]["dnn"][2, 6, 1]) and np.isnan(results[True]["rf"][2, 6, 1])
    assert np.isfinite(results[True]["rf"][2, 5, 5])

    # no rf output and no rf weight: the forest is not run
    outputs = {name: str(tmp_path / f"{name}_norf.tif") for name in ["dnn", "cnn", "lstm", "ensemble", "ensemble_std"]}
    _predict_layer(members, weights, spec, rasters, coarse_path, factor, outputs, block_cells=2)
    assert forest.calls == 8
    np.testing.assert_array_equal(io.read_stack(outputs["ensemble"]).data, results[True]["ensemble"])

    # the product alone (a run that writes no member's map): every weighted member predicted, none written
    outputs = {name: str(tmp_path / f"{name}_product.tif") for name in ["ensemble", "ensemble_std"]}
    _predict_layer(members, weights, spec, rasters, coarse_path, factor, outputs, block_cells=2)
    for name in outputs:
        np.testing.assert_array_equal(io.read_stack(outputs[name]).data, results[True][name], err_msg=name)
    assert sorted(p.name for p in tmp_path.glob("*_product.tif")) == ["ensemble_product.tif", "ensemble_std_product.tif"]


def test_weights_of_an_unloaded_member_are_an_error(tmp_path):
    rasters, coarse_path, factor = _world(tmp_path)
    with pytest.raises(ValueError, match="cnn"):
        _predict_layer({"dnn": _member("dnn")}, {"dnn": 0.5, "cnn": 0.5}, FeatureSpec(("x1",), ("x0",), (), False),
                      rasters, coarse_path, factor, {"ensemble": str(tmp_path / "e.tif")})


def test_lstm_head_runs_after_the_spin_up_only_where_it_works_day_by_day():
    import keras

    member = _member("lstm")
    assert inference._lstm_parts(member.model) is not None
    # a head that mixes days (a convolution along time) must run on the spin-up days too
    inputs = keras.Input((None, 2))
    memory = keras.layers.LSTM(3, return_sequences=True)(inputs)
    mixed = keras.layers.Conv1D(1, 3, padding="causal")(memory)
    assert inference._lstm_parts(keras.Model(inputs, mixed)) is None


def test_rf_alone_equals_the_rf_of_the_joint_job(tmp_path):
    """predict_rf's job: the forest alone, no ensemble, the same map as when predicted beside the members."""
    rasters, coarse_path, factor = _world(tmp_path)
    spec = FeatureSpec(("x1",), ("x0",), (), False)
    joint = {name: str(tmp_path / f"{name}_joint.tif") for name in ["dnn", "rf", "ensemble", "ensemble_std"]}
    rf = models.Member("rf", _Forest(), {})
    _predict_layer({"dnn": _member("dnn"), "rf": rf}, {"dnn": 1.0}, spec, rasters, coarse_path, factor, joint)
    alone = {"rf": str(tmp_path / "rf_alone.tif")}
    timings = {}
    _predict_layer({"rf": rf}, {}, spec, rasters, coarse_path, factor, alone, timings=timings)
    np.testing.assert_array_equal(io.read_stack(alone["rf"]).data, io.read_stack(joint["rf"]).data)
    assert "ensemble" not in timings and "dnn" not in timings
    with pytest.raises(ValueError, match="without member weights"):
        _predict_layer({"rf": rf}, {}, spec, rasters, coarse_path, factor, {"rf": alone["rf"], "ensemble": joint["ensemble"]})


def _smooth_world(tmp_path):
    """A 3 x 4 coarse grid (factor 4) with known coarse values, a NaN predictor pixel and a day without one cell's
    coarse value; predictors whose model output has steps the coarse input does not."""
    grid = Grid("EPSG:6933", Affine(9000.0, 0, 0.0, 0, -9000.0, 900000.0), 3, 4)
    factor, days = 4, DATES[:4]
    fine_grid = nested_grid(grid, factor)
    rng = np.random.default_rng(11)
    x1 = rng.random((len(days), 12, 16)).astype(np.float32)
    x1[1, 5, 9] = np.nan
    x0 = np.add.outer(np.linspace(0, 1, 12), np.linspace(0, 1, 16))[None].astype(np.float32)
    rasters = {"x1": str(tmp_path / "x1.tif"), "x0": str(tmp_path / "x0.tif")}
    io.write_stack(rasters["x1"], io.Stack(x1, fine_grid, days))
    io.write_stack(rasters["x0"], io.Stack(x0, fine_grid, None))
    coarse = (0.2 + 0.1 * np.add.outer(np.arange(3), np.arange(4)) / 5)[None].repeat(len(days), 0).astype(np.float32)
    coarse[2, 1, 2] = np.nan
    coarse_path = str(tmp_path / "coarse.tif")
    io.write_stack(coarse_path, io.Stack(coarse, grid, days))
    return rasters, coarse_path, coarse, factor


@pytest.mark.parametrize("overlap", [True, False])
def test_smooth_correction_in_two_passes_keeps_cell_means_and_equals_the_whole_region(tmp_path, overlap):
    rasters, coarse_path, coarse, factor = _smooth_world(tmp_path)
    spec = FeatureSpec(("x1",), ("x0",), (), False)
    members = {"dnn": _member("dnn", seed=1), "cnn": _member("cnn", seed=2), "rf": models.Member("rf", _Forest(), {})}
    weights = {"dnn": 0.6, "cnn": 0.4}
    names = ["dnn", "cnn", "rf", "ensemble", "ensemble_std"]
    raw = {name: str(tmp_path / f"{name}_none.tif") for name in names}
    _predict_layer(members, weights, spec, rasters, coarse_path, factor, raw, correction="none", valid_range=(-9, 9))
    out = {name: str(tmp_path / f"{name}_smooth_{overlap}.tif") for name in names}
    timings = {}
    _predict_layer(members, weights, spec, rasters, coarse_path, factor, out, block_cells=2, correction="smooth",
                  valid_range=(-9, 9), timings=timings, overlap=overlap)
    assert {"scratch", "correction"} <= set(timings)
    assert not list(tmp_path.glob(".smdown-scratch-*")), "the scratch file is removed"
    for name in ("dnn", "cnn", "rf"):
        data = io.read_stack(out[name]).data
        # each cell's mean is the coarse input (the cell without a coarse value keeps the model's estimate)
        means, ok = block_mean(data, factor), np.isfinite(coarse)
        np.testing.assert_allclose(means[ok], coarse[ok], atol=1e-4, err_msg=name)
        uncorrected = io.read_stack(raw[name]).data
        np.testing.assert_allclose(data[2, 4:8, 8:12], uncorrected[2, 4:8, 8:12], atol=1e-6, err_msg=name)
        # block by block in two passes = the whole region at once
        whole = correction.smooth(uncorrected, coarse, factor)
        np.testing.assert_allclose(data, whole, atol=2e-6, err_msg=name)
        assert np.isnan(data[1, 5, 9]) and np.isfinite(data).sum() == np.isfinite(uncorrected).sum()
    fields = {name: io.read_stack(out[name]).data for name in ("dnn", "cnn")}
    mean, spread = ensemble.combine(fields, weights)
    np.testing.assert_allclose(io.read_stack(out["ensemble"]).data, mean, atol=1e-6)
    np.testing.assert_allclose(io.read_stack(out["ensemble_std"]).data, spread, atol=1e-6)


def test_smooth_correction_has_no_steps_at_cell_edges_where_additive_has(tmp_path):
    """A model output smooth across a cell edge stays smooth under the smooth correction; additive puts a step."""
    rasters, coarse_path, coarse, factor = _smooth_world(tmp_path)
    spec = FeatureSpec(("x1",), ("x0",), (), False)

    class Flat:  # a model output constant in space: all the structure comes from the correction
        def predict(self, x):
            return np.full(len(x), 0.25)

    member = {"rf": models.Member("rf", Flat(), {})}
    jumps = {}
    for method in ("additive", "smooth"):
        path = str(tmp_path / f"{method}.tif")
        _predict_layer(member, {}, spec, rasters, coarse_path, factor, {"rf": path}, correction=method)
        day = io.read_stack(path).data[0]
        edge = np.abs(day[:, factor - 1] - day[:, factor]).mean()  # across the first column edge
        inside = np.abs(day[:, 1] - day[:, 2]).mean()
        jumps[method] = edge / max(inside, 1e-9), edge
    assert jumps["additive"][0] > 1e3  # a step at the edge, none inside
    assert jumps["smooth"][0] < 2.0 and jumps["smooth"][1] < jumps["additive"][1] / 2


def test_unknown_correction_is_refused(tmp_path):
    rasters, coarse_path, factor = _world(tmp_path)
    with pytest.raises(ValueError, match="unknown correction"):
        _predict_layer({"dnn": _member("dnn")}, {"dnn": 1.0}, FeatureSpec(("x1",), ("x0",), (), False), rasters,
                      coarse_path, factor, {"dnn": str(tmp_path / "d.tif")}, correction="tobler")


def test_anchor_means_are_the_fine_cell_means_read_block_by_block(tmp_path):
    fine_grid = nested_grid(COARSE, 4)
    fine = np.arange(len(DATES) * 64, dtype=np.float32).reshape(len(DATES), 8, 8) / 1000
    fine[1, 0:4, 4:8] = np.nan  # a cell-day without a finite fine pixel keeps the coarse value
    path = str(tmp_path / "cubic.tif")
    io.write_stack(path, io.Stack(fine, fine_grid, DATES))
    coarse = np.full((len(DATES), 2, 2), 0.3, dtype=np.float32)
    coarse[2, 1, 1] = np.nan  # no coarse value: no anchor either
    for max_pixels in (1, 10**9):  # one cell a block, or the whole region
        means = correction.anchor_means(path, coarse, 4, max_pixels=max_pixels)
        expected = block_mean(fine, 4)
        expected[1, 0, 1] = 0.3
        expected[2, 1, 1] = np.nan
        np.testing.assert_allclose(means, expected, rtol=1e-6)
    with pytest.raises(ValueError, match="cubic.tif: 6 days of 8 x 8 pixels, not the coarse input's 6 days of 2 x 3"):
        correction.anchor_means(path, np.zeros((len(DATES), 2, 3), np.float32), 4)


@pytest.mark.parametrize("method", ["additive", "smooth"])
def test_the_smoothed_anchor_pins_each_cell_to_the_cell_mean_of_the_anchor_raster(tmp_path, method):
    rasters, coarse_path, factor = _world(tmp_path)
    anchor = 0.2 + 0.1 * np.random.default_rng(9).random((len(DATES), 8, 8)).astype(np.float32)
    anchor_path = str(tmp_path / "anchor.tif")
    io.write_stack(anchor_path, io.Stack(anchor, nested_grid(COARSE, factor), DATES))
    spec = FeatureSpec(("x1",), ("x0",), (), False)
    out = str(tmp_path / "rf.tif")
    _predict_layer({"rf": models.Member("rf", _Forest(), {})}, {}, spec, rasters, coarse_path, factor, {"rf": out},
                  correction=method, valid_range=(-9, 9), anchor=anchor_path)
    data = io.read_stack(out).data
    means = block_mean(data, factor)
    np.testing.assert_allclose(means, block_mean(anchor, factor), atol=1e-4)
    assert np.abs(means - io.read_stack(coarse_path).data).max() > 0.01  # not the coarse values


def _predict_layer(*args, **settings):
    """predict_layer with the schema's defaults of config predict where a test does not set them."""
    return predict_layer(*args, **{**PREDICT_SETTINGS, **settings})

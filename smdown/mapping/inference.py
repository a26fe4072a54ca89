"""The trained members run by ONNX Runtime, for prediction only (TensorFlow and scikit-learn train them and stay the
fallback).

A member's weights are read from its Keras model; the input scaling (Normalization) is folded into the first layer's
weights and the target's scale (Rescaling) into the last layer's (float64 arithmetic, float32 weights); the layers
are written as a small ONNX graph (Gemm, Conv, LSTM, Relu) and run by an ONNX Runtime session. The session is
checked against the Keras model on random inputs when it is built: a model of another shape, one whose check fails,
or a missing onnxruntime, and the member is predicted by TensorFlow as before (`plan` returns None).

Why: the members are small (dense layers of 32 units, 3 x 3 convolutions of 16 filters, an LSTM of 16 units), and
ONNX Runtime's kernels for such narrow layers took a third (DNN) and a half (CNN) of TensorFlow's CPU time on the
demo's blocks. Each block is cut into pieces whose activations stay in the CPU's caches (rows of pixel-days for the
DNN, days for the CNN, pixels' whole series for the LSTM), each piece is one call of a one-thread session, and the
pieces are spread over the job's threads (`threads`, passed by the step).

- DNN: rows (n, F) -> (n, 1).
- CNN: images (n, H + 2 r, W + 2 r, F) channels-last, transposed inside the graph -> (n, 1, H, W).
- LSTM: series (spin-up + days, pixels, F), time-major as the block's cube is (no transpose), the spin-up's first
  day repeated in front; the dense head runs on the days after the spin-up only, its first layer as
  memory W_m + x W_s (W_s zero on the dynamic inputs) so that no concatenation is needed. Where numba is installed
  the same folded weights run as one compiled kernel instead (smdown.mapping.recurrent: about half the CPU time).
- Random forest: rows (n, F) -> (n, 1), the forest written by skl2onnx (forest_plan).
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from smdown.learning.models import Member, keras_module, rf_predict

log = logging.getLogger(__name__)

ROWS = 8192  # dnn: pixel-days per call (its layers' activations stay in the L2 cache)
SERIES = 256  # lstm: pixels per call, all their days (the state, gates and head's activations stay in the caches)
DAYS = 1  # cnn: images (days) per call
PIXELS = 1024  # rf (compiled trees): pixels per call, all their days (their static masks stay in the L2 cache)
TOLERANCE = 2e-5  # largest |ONNX Runtime - Keras| accepted on the check's random inputs (output units)

_POOL: dict[int, ThreadPoolExecutor] = {}


def _map(fn, items: list, threads: int) -> None:
    """fn(item) for every item, spread over `threads` threads (ONNX Runtime releases the GIL)."""
    n = min(max(1, threads), len(items))
    if n <= 1:
        for item in items:
            fn(item)
        return
    pool = _POOL.get(n)
    if pool is None:
        pool = _POOL[n] = ThreadPoolExecutor(n, "smdown-infer")
    for future in [pool.submit(fn, item) for item in items]:
        future.result()


@dataclass
class Dense:
    """y = act(x W + b): W (in, out) float32 (a 3 x 3 convolution: (9 in, out), rows in (dy, dx, in) order)."""

    w: np.ndarray
    b: np.ndarray
    relu: bool


@dataclass
class Plan:
    """A member's folded layers (`kind` dnn | cnn | lstm) and, once built, its ONNX Runtime session."""

    kind: str
    layers: list[Dense] = field(default_factory=list)  # dnn: the dense layers; cnn: the 1 x 1 layers after the 3 x 3
    convs: list[Dense] = field(default_factory=list)  # cnn: the 3 x 3 layers
    lstm: dict = field(default_factory=dict)  # lstm: kernel, bias (ONNX gate order), units, dynamic, head
    spin: int = 0  # lstm: days of spin-up (the first day repeated) inside the graph
    session: object = None
    threads: int = 1  # the pieces of a call are spread over this many threads (the job's)
    forest: object = None  # rf: the trees compiled by numba (smdown.mapping.trees.Forest), instead of the session
    recurrent: object = None  # lstm: the kernel compiled by numba (smdown.mapping.recurrent.Recurrent), instead of it

    # ---------------------------------------------------------------- the forward passes

    def dense_rows(self, x: np.ndarray, out: np.ndarray) -> None:
        """The DNN (or the forest) on rows x (n, F) into out (n,)."""
        if self.forest is not None:
            self.forest_cube(x[None, None], out.reshape(1, 1, -1))
            return

        def run(start: int) -> None:
            out[start : start + ROWS] = self._run(x[start : start + ROWS]).reshape(-1)

        _map(run, list(range(0, len(x), ROWS)), self.threads)

    def conv_days(self, cube: np.ndarray, out: np.ndarray) -> None:
        """The CNN on images cube (T, H + 2 r, W + 2 r, F) (r: its receptive radius) into out (T, H, W)."""

        def run(day: int) -> None:
            out[day : day + DAYS] = self._run(cube[day : day + DAYS])[:, 0]

        _map(run, list(range(0, len(cube), DAYS)), self.threads)

    def series(self, cube: np.ndarray, out: np.ndarray) -> None:
        """The LSTM on every pixel's series: cube (T, P, F) time-major, out (T, P); the first day repeated `spin`
        times before the first day (spin-up), the head run on the days after it."""
        if self.recurrent is not None:
            pixels = cube.shape[1]

            def compiled(start: int) -> None:
                self.recurrent.predict(cube, out, start, min(start + SERIES, pixels), self.spin)

            _map(compiled, list(range(0, pixels, SERIES)), self.threads)
            return

        def run(start: int) -> None:
            x = cube[:, start : start + SERIES]
            spun = np.concatenate([np.broadcast_to(x[:1], (self.spin, *x.shape[1:])), x]) if self.spin else x
            out[:, start : start + SERIES] = self._run(spun).reshape(x.shape[:2])

        _map(run, list(range(0, cube.shape[1], SERIES)), self.threads)

    def forest_cube(self, cube: np.ndarray, out: np.ndarray) -> None:
        """The compiled forest on a block: cube (T, H, W, F) float32, any strides (no copy), into out (T, H, W);
        pieces of PIXELS pixels (all their days) spread over the threads."""
        pixels = cube.shape[1] * cube.shape[2]

        def run(start: int) -> None:
            self.forest.predict(cube, out, start, min(start + PIXELS, pixels))

        _map(run, list(range(0, pixels, PIXELS)), self.threads)

    def _run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"x": np.ascontiguousarray(x, dtype=np.float32)})[0]


# ---------------------------------------------------------------- building a plan from a Keras model


def plan(kind: str, model, spin: int = 0) -> Plan | None:
    """The forward pass of a Keras member built by smdown.learning.models.build (with_units appended) as an ONNX Runtime
    session (`spin`: the LSTM's spin-up days), checked against the model on random inputs; None where ONNX Runtime
    is not installed, the model has another shape or the check fails. The LSTM runs as a kernel compiled by numba
    (smdown.mapping.recurrent) where numba is installed and the kernel passes the same check (SMDOWN_INFERENCE=onnx
    chooses ONNX Runtime's LSTM)."""
    if kind == "lstm" and os.environ.get("SMDOWN_INFERENCE", "numpy") != "onnx":
        built = _recurrent_plan(model, spin)
        if built is not None:
            return built
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        log.info("%s: onnxruntime or onnx not installed; predicted by TensorFlow", kind)
        return None
    try:
        built = {"dnn": _plan_dense, "cnn": _plan_conv, "lstm": _plan_lstm}[kind](model)
        built.spin = spin
        built.session = _session(_graph(built, model.inputs[0].shape[-1]))
        if _check(built, model):
            log.info("%s: predicted by ONNX Runtime (checked against Keras to %g)", kind, TOLERANCE)
            return built
        log.warning("%s: ONNX Runtime differs from Keras on random inputs; predicted by TensorFlow", kind)
    except _Unsupported as why:
        log.info("%s: a model shape ONNX Runtime is not set up for (%s); predicted by TensorFlow", kind, why)
    except Exception as error:  # noqa: BLE001 (any failure of the faster path falls back to the reference one)
        log.warning("%s: ONNX Runtime failed (%s); predicted by TensorFlow", kind, error)
    return None


def _recurrent_plan(model, spin: int) -> Plan | None:
    """The LSTM as the kernel compiled by numba, checked against the model; None where numba is not installed, the
    model has another shape or the check fails. On the demo's blocks it took about half of ONNX Runtime's CPU time
    (ONNX Runtime: a call of its LSTM kernel and of each head layer per piece, scalar gate functions; here one pass
    a day over a piece's pixels held side by side in the caches, the static inputs' share of the head once a pixel)."""
    try:
        from smdown.mapping import recurrent
    except ImportError:
        log.info("lstm: numba not installed; trying ONNX Runtime")
        return None
    try:
        built = _plan_lstm(model)
        built.spin = spin
        built.recurrent = recurrent.Recurrent(built.lstm, built.layers)
        if _check(built, model):
            log.info("lstm: predicted by a compiled kernel (numba; checked against Keras to %g)", TOLERANCE)
            return built
        log.warning("lstm: the compiled kernel differs from Keras on random inputs; trying ONNX Runtime")
    except _Unsupported as why:
        log.info("lstm: a model shape the compiled kernel is not set up for (%s); trying ONNX Runtime", why)
    except Exception as error:  # noqa: BLE001 (any failure of the faster path falls back to the next one)
        log.warning("lstm: the compiled kernel failed (%s); trying ONNX Runtime", error)
    return None


def forest_plan(model) -> Plan | None:
    """A fitted scikit-learn forest (the random-forest member) as compiled trees (smdown.mapping.trees: numba, the
    same float32 numbers as scikit-learn), or where numba is not installed or they fail as an ONNX Runtime session
    (TreeEnsembleRegressor, written by skl2onnx), each checked against the forest on random inputs; None where
    neither is available or passes the check (scikit-learn predicts). SMDOWN_INFERENCE=onnx skips the compiled trees.
    Rows (n, F) -> (n,) through Plan.dense_rows; a block through Plan.forest_cube (compiled trees only).
    On the demo's blocks the compiled trees took a quarter of ONNX Runtime's CPU time (ONNX Runtime's tree walk:
    two thirds of scikit-learn's): they compute each pixel's static features once and each day's features that
    are constant over a piece of the block once a day. ONNX Runtime's thresholds are scikit-learn's rounded to
    float32, so a value between a threshold and its rounding could take the other branch; none did on the demo's
    72 M pixel-days (the maps agree to 1.5e-7, the float32 sum of the trees)."""
    if not hasattr(model, "estimators_") or not hasattr(model, "n_features_in_"):
        log.info("rf: not a fitted scikit-learn forest; predicted by its own predict")
        return None
    n_features = int(model.n_features_in_)
    if os.environ.get("SMDOWN_INFERENCE", "numpy") != "onnx":
        try:
            from smdown.mapping import trees

            built = Plan("rf", forest=trees.Forest(model))
            if _check_forest(built, model, n_features):
                log.info("rf: predicted by compiled trees (numba; checked against scikit-learn to %g)", TOLERANCE)
                return built
            log.warning("rf: the compiled trees differ from scikit-learn on random inputs; trying ONNX Runtime")
        except ImportError:
            log.info("rf: numba not installed; trying ONNX Runtime")
        except Exception as error:  # noqa: BLE001 (any failure of the faster path falls back to the next one)
            log.warning("rf: the compiled trees failed (%s); trying ONNX Runtime", error)
    try:
        import onnxruntime  # noqa: F401
        from skl2onnx import to_onnx
        from skl2onnx.common.data_types import FloatTensorType
    except ImportError:
        log.info("rf: skl2onnx or onnxruntime not installed; predicted by scikit-learn")
        return None
    try:
        graph = to_onnx(model, initial_types=[("x", FloatTensorType([None, n_features]))],
                        target_opset={"": 17, "ai.onnx.ml": 3})
        built = Plan("rf", session=_session(graph))
        if _check_forest(built, model, n_features):
            log.info("rf: predicted by ONNX Runtime (checked against scikit-learn to %g)", TOLERANCE)
            return built
        log.warning("rf: ONNX Runtime differs from scikit-learn on random inputs; predicted by scikit-learn")
    except Exception as error:  # noqa: BLE001 (any failure of the faster path falls back to the reference one)
        log.warning("rf: ONNX Runtime failed (%s); predicted by scikit-learn", error)
    return None


def _check_forest(built: Plan, model, n_features: int) -> bool:
    """The session against the forest on random rows spread over the range of its split thresholds."""
    rng = np.random.default_rng(0)
    low, high = np.zeros(n_features), np.ones(n_features)
    for feature in range(n_features):
        thresholds = np.concatenate([tree.tree_.threshold[tree.tree_.feature == feature]
                                     for tree in model.estimators_])
        if thresholds.size:
            low[feature], high[feature] = thresholds.min() - 1.0, thresholds.max() + 1.0
    x = rng.uniform(low, high, size=(2000, n_features)).astype(np.float32)
    expected = model.predict(x)
    got = np.empty(len(x), np.float32)
    built.dense_rows(x, got)
    return bool(np.all(np.abs(got - expected) <= TOLERANCE))


class _Unsupported(Exception):
    pass


def _activation(layer) -> bool:
    """True for relu, False for linear; anything else is not supported."""
    name = layer.get_config().get("activation", "linear")
    if name not in ("relu", "linear"):
        raise _Unsupported(name)
    return name == "relu"


def _scaling(layer) -> tuple[np.ndarray, np.ndarray]:
    """A Normalization layer as x * scale + shift (float64), as Keras computes it."""
    import keras

    if layer.get_config().get("invert"):
        raise _Unsupported("inverted normalization")
    mean = np.asarray(layer.mean, np.float64).reshape(-1)
    std = np.maximum(np.sqrt(np.asarray(layer.variance, np.float64).reshape(-1)), keras.backend.epsilon())
    return 1.0 / std, -mean / std


def _chain_layers(model, allowed: tuple) -> list:
    """The model's layers after its input, each of one of the `allowed` classes, in a single chain."""
    import keras

    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    for layer in layers:
        if not isinstance(layer, allowed) or len(layer._inbound_nodes) != 1:
            raise _Unsupported(type(layer).__name__)
    for before, after in zip(layers, layers[1:], strict=False):
        parents = after._inbound_nodes[0].parent_nodes
        if len(parents) != 1 or parents[0].operation is not before:
            raise _Unsupported("not a chain")
    return layers


def _fold(layers: list, kind: str) -> tuple[list[Dense], list[Dense]]:
    """Normalization, Dense | Conv2D ..., Dropout, Rescaling -> (3 x 3 convolutions, dense / 1 x 1 layers), with the
    scaling folded into the first and the last weights (float64 arithmetic, float32 results)."""
    import keras

    scale = shift = None
    convs: list[list] = []
    dense: list[list] = []
    for layer in layers:
        if isinstance(layer, keras.layers.Normalization):
            if convs or dense or scale is not None:
                raise _Unsupported("normalization after the first layer")
            scale, shift = _scaling(layer)
        elif isinstance(layer, keras.layers.Dropout):
            continue
        elif isinstance(layer, keras.layers.Rescaling):
            target = dense[-1] if dense else None
            if target is None or target[2]:
                raise _Unsupported("rescaling after a relu")
            factor, offset = float(layer.scale), float(layer.offset)
            target[0], target[1] = target[0] * factor, target[1] * factor + offset
        elif isinstance(layer, keras.layers.Dense if kind == "dnn" else keras.layers.Conv2D):
            kernel, bias = (np.asarray(v, np.float64) for v in layer.get_weights())
            relu = _activation(layer)
            if kind == "cnn":
                config = layer.get_config()
                if (config["padding"] != "valid" or tuple(config["strides"]) != (1, 1) or tuple(
                        config["dilation_rate"]) != (1, 1) or config["data_format"] != "channels_last"
                        or config.get("groups", 1) != 1):
                    raise _Unsupported("convolution settings")
                size = kernel.shape[:2]
                if size == (3, 3):
                    if dense:
                        raise _Unsupported("3 x 3 after 1 x 1")
                    convs.append([kernel, bias, relu])
                    continue
                if size != (1, 1):
                    raise _Unsupported(f"kernel {size}")
                kernel = kernel[0, 0]
            dense.append([kernel, bias, relu])
        else:
            raise _Unsupported(type(layer).__name__)
    if scale is not None:  # x W + b on scaled inputs x * scale + shift: (x * scale) W + (shift W + b)
        first = convs[0] if convs else dense[0]
        kernel = first[0]  # (in, out) or (3, 3, in, out)
        first[1] = first[1] + (shift[:, None] * kernel).reshape(-1, kernel.shape[-1]).sum(axis=0)
        first[0] = kernel * scale[:, None]
    if not dense or dense[-1][0].shape[-1] != 1:
        raise _Unsupported("not one output")
    as32 = [Dense(np.ascontiguousarray(k, np.float32), b.astype(np.float32), r) for k, b, r in convs]
    return as32, [Dense(np.ascontiguousarray(k, np.float32), b.astype(np.float32), r) for k, b, r in dense]


def _plan_dense(model) -> Plan:
    import keras

    layers = _chain_layers(model, (keras.layers.Normalization, keras.layers.Dense, keras.layers.Dropout,
                                   keras.layers.Rescaling))
    convs, dense = _fold(layers, "dnn")
    return Plan("dnn", layers=dense)


def _plan_conv(model) -> Plan:
    import keras

    layers = _chain_layers(model, (keras.layers.Normalization, keras.layers.Conv2D, keras.layers.Dropout,
                                   keras.layers.Rescaling))
    convs, dense = _fold(layers, "cnn")
    return Plan("cnn", layers=dense, convs=convs)


def _plan_lstm(model) -> Plan:
    """Normalization -> [dynamic inputs] -> LSTM -> Concatenate with [static inputs] -> Dense ... -> Rescaling, as
    smdown.learning.models.build makes it; the split of the inputs is read from the LSTM's kernel and the first Dense's
    width, and the whole is checked against the model afterwards."""
    import keras

    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    if [type(layer) for layer in layers[:2]] != [keras.layers.Normalization, keras.layers.LSTM]:
        raise _Unsupported("not normalization, lstm")
    norm, lstm = layers[0], layers[1]
    config = lstm.get_config()
    if (config["activation"] != "tanh" or config["recurrent_activation"] != "sigmoid" or not config["use_bias"]
            or config["go_backwards"] or not config["return_sequences"] or config.get("stateful")):
        raise _Unsupported("lstm settings")
    rest = layers[2:]
    if rest and isinstance(rest[0], keras.layers.Concatenate):
        rest = rest[1:]
    head = _dense_chain(rest)
    kernel, recurrent, bias = (np.asarray(v, np.float64) for v in lstm.get_weights())
    n_dynamic, units = kernel.shape[0], recurrent.shape[0]
    scale, shift = _scaling(norm)
    n_features = len(scale)
    n_static = head[0][0].shape[0] - units
    if n_static not in (0, n_features - n_dynamic):
        raise _Unsupported("head inputs")
    # the scaling of the dynamic inputs folded into the LSTM's kernel and bias; the static inputs' columns zero
    bias = bias + shift[:n_dynamic] @ kernel
    kernel = np.vstack([kernel * scale[:n_dynamic, None], np.zeros((n_features - n_dynamic, 4 * units))])
    order = np.r_[0:units, 3 * units : 4 * units, units : 2 * units, 2 * units : 3 * units]  # Keras ifco -> ONNX iofc
    # the head's first layer as memory W_m + x W_s, W_s's rows of the dynamic inputs zero and its scaling folded in
    first_w, first_b, first_relu = head[0]
    static_w = np.zeros((n_features, first_w.shape[1]))
    if n_static:
        static_w[n_dynamic:] = first_w[units:] * scale[n_dynamic:, None]
        first_b = first_b + shift[n_dynamic:] @ first_w[units:]
    f32 = np.float32
    return Plan("lstm", layers=[Dense(first_w[:units].astype(f32), first_b.astype(f32), first_relu)]
                + [Dense(k.astype(f32), b.astype(f32), r) for k, b, r in head[1:]],
                lstm={"units": units, "kernel": kernel[:, order].T.astype(f32),
                      "recurrent": recurrent[:, order].T.astype(f32), "bias": bias[order].astype(f32),
                      "static": static_w.astype(f32) if n_static else None})


def _dense_chain(layers: list) -> list[list]:
    """Dense ..., Dropout, Rescaling -> [[kernel, bias, relu], ...] (float64), the rescaling folded into the last."""
    import keras

    dense: list[list] = []
    for layer in layers:
        if isinstance(layer, keras.layers.Dropout):
            continue
        if isinstance(layer, keras.layers.Dense):
            kernel, bias = (np.asarray(v, np.float64) for v in layer.get_weights())
            dense.append([kernel, bias, _activation(layer)])
        elif isinstance(layer, keras.layers.Rescaling) and dense and not dense[-1][2]:
            factor, offset = float(layer.scale), float(layer.offset)
            dense[-1][0], dense[-1][1] = dense[-1][0] * factor, dense[-1][1] * factor + offset
        else:
            raise _Unsupported(type(layer).__name__)
    if not dense or dense[-1][0].shape[-1] != 1:
        raise _Unsupported("not one output")
    return dense


# ---------------------------------------------------------------- the ONNX graphs


def _graph(built: Plan, n_features: int):
    """The plan as an ONNX model: input "x" (dnn: rows (n, F); cnn: images (n, H, W, F); lstm: series (days, P, F),
    time-major, spin-up included), output (n, 1), (n, 1, H', W') or (days - spin) x P rows."""
    from onnx import TensorProto, helper, numpy_helper

    nodes, weights = [], []

    def const(name: str, value: np.ndarray) -> str:
        weights.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(op: str, inputs: list[str], **attrs) -> str:
        out = f"t{len(nodes)}"
        nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def dense(x: str, layers: list[Dense], tag: str) -> str:
        for i, layer in enumerate(layers):
            x = node("Gemm", [x, const(f"{tag}w{i}", layer.w), const(f"{tag}b{i}", layer.b)])
            if layer.relu:
                x = node("Relu", [x])
        return x

    if built.kind == "dnn":
        shape, y = ["n", n_features], dense("x", built.layers, "d")
    elif built.kind == "cnn":
        shape = ["n", "h", "w", n_features]
        y = node("Transpose", ["x"], perm=[0, 3, 1, 2])
        for i, conv in enumerate(built.convs):
            y = node("Conv", [y, const(f"cw{i}", conv.w.transpose(3, 2, 0, 1).copy()), const(f"cb{i}", conv.b)])
            y = node("Relu", [y]) if conv.relu else y
        for i, layer in enumerate(built.layers):
            y = node("Conv", [y, const(f"pw{i}", layer.w.T[:, :, None, None].copy()), const(f"pb{i}", layer.b)])
            y = node("Relu", [y]) if layer.relu else y
    else:
        p, units = built.lstm, built.lstm["units"]
        shape = ["t", "p", n_features]
        memory = node("LSTM", ["x", const("W", p["kernel"][None]), const("R", p["recurrent"][None]),
                               const("B", np.concatenate([p["bias"], np.zeros_like(p["bias"])])[None])],
                      hidden_size=units)
        after = [const("spin", np.array([built.spin], np.int64)), const("end", np.array([2**62], np.int64)),
                 const("axis", np.array([0], np.int64))]
        memory = node("Reshape", [node("Slice", [memory, *after]), const("rows_m", np.array([-1, units], np.int64))])
        first = built.layers[0]
        hidden = node("MatMul", [memory, const("hw", first.w)])
        if p["static"] is not None:
            rows = node("Reshape", [node("Slice", ["x", *after]), const("rows_x", np.array([-1, n_features], np.int64))])
            hidden = node("Add", [hidden, node("MatMul", [rows, const("hs", p["static"])])])
        hidden = node("Add", [hidden, const("hb", first.b)])
        hidden = node("Relu", [hidden]) if first.relu else hidden
        y = dense(hidden, built.layers[1:], "h")
    nodes.append(helper.make_node("Identity", [y], ["y"]))
    graph = helper.make_graph(nodes, built.kind, [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _session(model):
    """One ONNX Runtime session on one thread (the pieces are spread over the job's threads by _map), no spinning
    (an idle thread would burn the CPU time of the other work of the job: reading, writing)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _check(built: Plan, model) -> bool:
    """The session against the Keras model on random inputs (around the inputs' scaling): largest |difference|
    within TOLERANCE, and no NaN."""
    import keras

    rng = np.random.default_rng(0)
    n_features = model.inputs[0].shape[-1]
    mean, spread = 0.0, 1.0
    norm = [layer for layer in model.layers if isinstance(layer, keras.layers.Normalization)]
    if norm:
        scale, shift = _scaling(norm[0])
        mean, spread = -shift / scale, 1.0 / scale
    if built.kind == "dnn":
        x = (rng.normal(size=(50, n_features)) * spread + mean).astype(np.float32)
        expected = np.asarray(model(x, training=False))[:, 0]
        got = np.empty(len(x), np.float32)
        built.dense_rows(x, got)
    elif built.kind == "cnn":
        radius = len(built.convs)
        x = (rng.normal(size=(2, 5 + 2 * radius, 4 + 2 * radius, n_features)) * spread + mean).astype(np.float32)
        expected = np.asarray(model(x, training=False))[..., 0]
        got = np.empty(expected.shape, np.float32)
        built.conv_days(x, got)
    else:
        x = (rng.normal(size=(6, 5, n_features)) * spread + mean).astype(np.float32)  # (days, pixels, F)
        series = np.concatenate([np.repeat(x[:1], built.spin, axis=0), x]).transpose(1, 0, 2)
        expected = np.asarray(model(series, training=False))[:, built.spin :, 0].T
        got = np.empty(expected.shape, np.float32)
        built.series(x, got)
    return got.shape == expected.shape and bool(np.all(np.abs(got - expected) <= TOLERANCE))


# ---------------------------------------------------------------- a member over a block


def predict_cube(member: Member, cube: np.ndarray, halo: int, missing: np.ndarray | None = None,
             threads: int = 1) -> np.ndarray:
    """Predict a block: cube (T, H + 2 halo, W + 2 halo, F) float32 -> (T, H, W) float32.

    A pixel-day whose inputs hold a NaN (for the CNN: anywhere in its receptive field) is NaN:
    activations such as ReLU would otherwise turn a missing predictor into a plausible number.
    `missing` (T, H + 2 halo, W + 2 halo) may be given with a cube whose NaN were already zeroed.
    Deep members run as compiled TensorFlow functions (not `model.predict`) on chunks of one shape, so that each
    is traced once per block shape.
    """
    days, height, width = cube.shape[0], cube.shape[1] - 2 * halo, cube.shape[2] - 2 * halo
    if missing is None:
        missing = ~np.isfinite(cube).all(axis=-1)
        cube = np.nan_to_num(cube, nan=0.0)
    cube = np.asarray(cube, dtype=np.float32)
    if member.name == "cnn" and missing.any():
        from scipy.ndimage import maximum_filter

        size = 2 * member.halo + 1
        missing = maximum_filter(missing, size=(1, size, size), mode="nearest")
    missing = missing[:, halo : halo + height, halo : halo + width]
    out = _predict_cube(member, cube, halo, days, height, width, threads)
    out[missing] = np.nan
    return out

def _predict_cube(member: Member, cube: np.ndarray, halo: int, days: int, height: int, width: int,
              threads: int) -> np.ndarray:
    """(T, H, W) float32, a fresh array (no NaN masking)."""
    crop = (slice(None), slice(halo, halo + height), slice(halo, halo + width))
    fast = member_plan(member, threads)
    if member.name == "rf":
        if fast is not None and fast.forest is not None:
            out = np.empty((days, height, width), np.float32)
            fast.forest_cube(cube[crop], out)  # every pixel-day: predict_cube sets those with a NaN input to NaN
            return out
        rows = cube[crop].reshape(-1, cube.shape[-1])
        if fast is None:
            return rf_predict(member.model, rows).reshape(days, height, width)
        out = np.empty(len(rows), np.float32)
        fast.dense_rows(rows, out)  # every row: predict_cube sets those with a NaN input to NaN
        return out.reshape(days, height, width)
    if fast is not None:
        return _predict_onnx(member, fast, cube, halo, days, height, width)
    fn = _compiled(member)
    if member.name == "cnn":
        inner = member.halo
        trimmed = cube[:, halo - inner : halo + height + inner, halo - inner : halo + width + inner]
        return _batched(fn, trimmed, CHUNK_DAYS)[..., 0]
    if member.name == "dnn":
        # whole days, halo included, are contiguous: no copy of the block; the halo's few extra rows are dropped
        rows = cube.reshape(-1, cube.shape[-1])
        return _batched(fn, rows, CHUNK_ROWS).reshape(cube.shape[:3])[crop].copy()
    # lstm: every pixel's whole series at once, after a spin-up of the first day repeated, on chunks of pixels
    # (whole block rows, halo columns included: the block's rows are a view of the cube)
    band = cube[:, halo : halo + height].reshape(days, -1, cube.shape[-1])
    out = _batched(_compiled_series(member), band.transpose(1, 0, 2), CHUNK_SERIES)
    return out.T.reshape(days, height, cube.shape[2])[:, :, halo : halo + width].copy()

def member_plan(member: Member, threads: int = 1) -> Plan | None:
    """The member as an ONNX Runtime session (smdown.mapping.inference; built and checked against the model once, cached),
    or None: the model is not of the shape it handles, or SMDOWN_INFERENCE=tensorflow asks for TensorFlow (and
    scikit-learn for the forest)."""
    if os.environ.get("SMDOWN_INFERENCE", "numpy") == "tensorflow":
        return None
    if "_onnx_plan" not in member.__dict__:
        if member.name == "rf":
            member.__dict__["_onnx_plan"] = forest_plan(member.model)
        else:
            spin = member.meta["sequence_days"] - 1 if member.name == "lstm" else 0
            member.__dict__["_onnx_plan"] = plan(member.name, member.model, spin)
    built = member.__dict__["_onnx_plan"]
    if built is not None:
        built.threads = threads
    return built

def _predict_onnx(member: Member, fast: Plan, cube: np.ndarray, halo: int, days: int, height: int,
              width: int) -> np.ndarray:
    """_predict_cube through ONNX Runtime: the same pieces of the cube as the TensorFlow path."""
    if member.name == "cnn":
        inner = member.halo
        out = np.empty((days, height, width), np.float32)
        fast.conv_days(cube[:, halo - inner : halo + height + inner, halo - inner : halo + width + inner], out)
        return out
    if member.name == "dnn":
        rows = cube.reshape(-1, cube.shape[-1])
        out = np.empty(len(rows), np.float32)
        fast.dense_rows(rows, out)
        return out.reshape(cube.shape[:3])[:, halo : halo + height, halo : halo + width].copy()
    band = cube[:, halo : halo + height].reshape(days, -1, cube.shape[-1])  # (days, pixels, F), a view
    out = np.empty(band.shape[:2], np.float32)
    fast.series(band, out)
    return out.reshape(days, height, cube.shape[2])[:, :, halo : halo + width].copy()

def _compiled(member: Member):
    """The model as one graph function (cached on the member). Graph mode, not XLA: for the DNN's dense layers
    and the CNN's convolutions TensorFlow's own (oneDNN) kernels took less CPU time than XLA's."""
    if "_fn" not in member.__dict__:
        import tensorflow as tf

        model = member.model
        member.__dict__["_fn"] = tf.function(lambda x: model(x, training=False))
    return member.__dict__["_fn"]

def _compiled_series(member: Member):
    """The LSTM on (pixels, days, F) series with the spin-up (first day repeated) added and cut inside one
    XLA-compiled function (its time loop fused: a third of the CPU time of `predict`): (pixels, days). Where the
    model splits into its recurrent part and a per-day head (`_lstm_parts`), the head skips the spin-up days."""
    if "_series_fn" not in member.__dict__:
        import tensorflow as tf

        model, spin = member.model, member.meta["sequence_days"] - 1
        parts = _lstm_parts(model) if spin else None

        def run(x):
            series = tf.concat([tf.repeat(x[:, :1], spin, axis=1), x], axis=1) if spin else x
            if parts is None:
                return model(series, training=False)[:, spin:, 0]
            recurrent, head = parts
            return head([recurrent(series, training=False)[:, spin:], x], training=False)[..., 0]

        member.__dict__["_series_fn"] = tf.function(run, jit_compile=True)
    return member.__dict__["_series_fn"]


def _lstm_parts(model, spin: int = 3):
    """(recurrent, head): the model up to its one LSTM layer (returning sequences), and the rest as a model of that
    layer's output and the model's input. Where the head works day by day (as the built LSTM's dense head does),
    running it on the days after the spin-up only gives the same numbers for less work: checked on random series,
    and None where it does not hold or the model is not of that shape."""
    keras = keras_module()
    recurrent = [layer for layer in model.layers if isinstance(layer, keras.layers.RNN | keras.layers.LSTM)]
    if len(recurrent) != 1 or not getattr(recurrent[0], "return_sequences", False) or len(model.inputs) != 1:
        return None
    try:
        parts = (keras.Model(model.inputs[0], recurrent[0].output),
                 keras.Model([recurrent[0].output, *model.inputs], model.outputs))
    except (ValueError, TypeError):
        return None
    x = np.random.default_rng(0).normal(size=(4, spin + 5, model.inputs[0].shape[-1])).astype(np.float32)
    whole = np.asarray(model(x, training=False))[:, spin:]
    memory = np.asarray(parts[0](x, training=False))[:, spin:]
    split = np.asarray(parts[1]([memory, x[:, spin:]], training=False))
    return parts if whole.shape == split.shape and np.allclose(whole, split, rtol=0, atol=1e-6) else None


# examples per call of a compiled member (the least CPU time measured on the demo's blocks): big enough to amortise
# a call, small enough for the caches (the LSTM's state of a chunk is carried through every day)
CHUNK_ROWS = 65536  # dnn: pixel-days
CHUNK_DAYS = 1  # cnn: whole days of a block
CHUNK_SERIES = 1024  # lstm: pixel series


def _batched(fn, x: np.ndarray, chunk: int) -> np.ndarray:
    """fn over x in chunks along the first axis, every chunk of the same shape (the last one padded with zeros) so
    that a compiled function is traced once; float32 output with the chunks' rows."""
    n = len(x)
    chunk = min(chunk, n)
    out = None
    for start in range(0, n, chunk):
        part = np.ascontiguousarray(x[start : start + chunk], dtype=np.float32)
        if len(part) < chunk:
            part = np.concatenate([part, np.zeros((chunk - len(part), *part.shape[1:]), np.float32)])
        values = np.asarray(fn(part))
        if out is None:
            out = np.empty((n, *values.shape[1:]), np.float32)
        out[start : start + chunk] = values[: min(chunk, n - start)]
    return out

"""The ensemble members: Keras DNN, CNN and LSTM, the random-forest peer, and loading them for prediction.

Each deep model carries its input scaling (a fixed Normalization layer fitted on training
data) and its output scaling inside the .keras file, and a JSON sidecar that says which
features and settings it was trained with, so a model from another predictor set is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from smdown import io

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

INPUT_FORM = {"dnn": "pixel", "rf": "pixel", "cnn": "patch", "lstm": "sequence"}


def signature(features: list[str], settings: dict) -> str:
    """A short hash of what a model's inputs mean: features and the sample geometry."""
    text = json.dumps({"features": list(features), **settings}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _keras():
    import keras

    return keras


def _head(keras, x, units: list[int], dropout: float, dense, l2: float = 0.0):
    for width in units:
        x = dense(width, activation="relu", kernel_regularizer=keras.regularizers.L2(l2) if l2 else None)(x)
        if dropout:
            x = keras.layers.Dropout(dropout)(x)
    return x


def build(kind: str, n_features: int, mean, variance, hp: dict, n_dynamic: int | None = None):
    """A compiled Keras model of one kind with its input scaling inside, predicting the standardised target
    (`n_dynamic`: how many leading features are dynamic). Training on the standardised target makes the loss, and
    so the weight of the L2 penalty against it, the same whatever the layer's units and variance; `with_units`
    then appends the target's scale."""
    keras = _keras()
    # an L2 penalty on the weights: with few coarse cells many combinations of the static predictors
    # fit the cell means equally well; the penalty picks the smallest one instead of large opposite
    # weights that cancel between cells and exaggerate the detail inside them
    l2 = hp.get("l2", 0.0)
    reg = keras.regularizers.L2(l2) if l2 else None
    norm = keras.layers.Normalization(axis=-1, mean=mean, variance=np.maximum(variance, 1e-12))
    if kind == "dnn":
        inputs = keras.Input((n_features,))
        x = _head(keras, norm(inputs), hp["dnn_units"], hp["dropout"], keras.layers.Dense, l2)
        x = keras.layers.Dense(1)(x)
    elif kind == "cnn":
        # valid 3x3 convolutions shrink a patch to one pixel; on a block with a halo the same
        # weights run fully convolutionally and give one value per pixel
        inputs = keras.Input((None, None, n_features))
        x = norm(inputs)
        for filters in hp["cnn_filters"]:
            x = keras.layers.Conv2D(filters, 3, padding="valid", activation="relu", kernel_regularizer=reg)(x)
        x = keras.layers.Conv2D(hp["cnn_filters"][-1], 1, activation="relu", kernel_regularizer=reg)(x)
        if hp["dropout"]:
            x = keras.layers.Dropout(hp["dropout"])(x)
        x = keras.layers.Conv2D(1, 1)(x)
    elif kind == "lstm":
        # returns a value for every day, so prediction runs once along the time axis
        # the LSTM carries the memory of the dynamic predictors; the static ones join its state in a
        # dense head, as in the DNN, rather than being fed through the recurrence every day
        inputs = keras.Input((None, n_features))
        scaled = norm(inputs)
        n_dynamic = n_features if n_dynamic is None else n_dynamic
        memory = keras.layers.LSTM(hp["lstm_units"], return_sequences=True, kernel_regularizer=reg,
                                   recurrent_regularizer=reg)(scaled[..., :n_dynamic])
        x = keras.layers.Concatenate()([memory, scaled[..., n_dynamic:]]) if n_dynamic < n_features else memory
        x = _head(keras, x, hp["dnn_units"], 0.0, keras.layers.Dense, l2)
        x = keras.layers.Dense(1)(x)
    else:
        raise ValueError(f"unknown model kind {kind!r}")
    model = keras.Model(inputs, x, name=kind)
    model.compile(optimizer=keras.optimizers.Adam(hp["learning_rate"]), loss="mse")
    return model


def with_units(model, y_mean: float, y_std: float):
    """The trained standardised model with the target's scale appended: it predicts m3/m3."""
    keras = _keras()
    outputs = keras.layers.Rescaling(scale=float(y_std), offset=float(y_mean))(model.output)
    return keras.Model(model.input, outputs, name=model.name)


def predict_examples(kind: str, model, samples: dict) -> np.ndarray:
    """A deep model's predictions for sample examples (in its own input form), one value per example."""
    x = samples[INPUT_FORM[kind]]
    out = np.asarray(model.predict(x, batch_size=4096, verbose=0))
    return out[:, -1, 0] if kind == "lstm" else out.reshape(len(x))


@dataclass
class Member:
    """A trained member ready to predict: name, model object and its metadata."""

    name: str
    model: object
    meta: dict

    @property
    def halo(self) -> int:
        return self.meta["patch"] // 2 if self.name == "cnn" else 0

    def predict_samples(self, samples: dict) -> np.ndarray:
        """Predictions for sample examples (their own input form), one value per example."""
        if self.name == "rf":
            return _rf_predict(self.model, samples[INPUT_FORM["rf"]])
        return predict_examples(self.name, self.model, samples)

    def predict_cube(self, cube: np.ndarray, halo: int, missing: np.ndarray | None = None) -> np.ndarray:
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
        if self.name == "cnn" and missing.any():
            from scipy.ndimage import maximum_filter

            size = 2 * self.halo + 1
            missing = maximum_filter(missing, size=(1, size, size), mode="nearest")
        missing = missing[:, halo : halo + height, halo : halo + width]
        out = self._predict_cube(cube, halo, days, height, width)
        out[missing] = np.nan
        return out

    def _predict_cube(self, cube: np.ndarray, halo: int, days: int, height: int, width: int) -> np.ndarray:
        """(T, H, W) float32, a fresh array (no NaN masking)."""
        crop = (slice(None), slice(halo, halo + height), slice(halo, halo + width))
        fast = self._plan()
        if self.name == "rf":
            rows = cube[crop].reshape(-1, cube.shape[-1])
            if fast is None:
                return _rf_predict(self.model, rows).reshape(days, height, width)
            out = np.empty(len(rows), np.float32)
            fast.dense_rows(rows, out)  # every row: predict_cube sets those with a NaN input to NaN
            return out.reshape(days, height, width)
        if fast is not None:
            return self._predict_onnx(fast, cube, halo, days, height, width)
        fn = self._compiled()
        if self.name == "cnn":
            inner = self.halo
            trimmed = cube[:, halo - inner : halo + height + inner, halo - inner : halo + width + inner]
            return _batched(fn, trimmed, CHUNK_DAYS)[..., 0]
        if self.name == "dnn":
            # whole days, halo included, are contiguous: no copy of the block; the halo's few extra rows are dropped
            rows = cube.reshape(-1, cube.shape[-1])
            return _batched(fn, rows, CHUNK_ROWS).reshape(cube.shape[:3])[crop].copy()
        # lstm: every pixel's whole series at once, after a spin-up of the first day repeated, on chunks of pixels
        # (whole block rows, halo columns included: the block's rows are a view of the cube)
        band = cube[:, halo : halo + height].reshape(days, -1, cube.shape[-1])
        out = _batched(self._compiled_series(), band.transpose(1, 0, 2), CHUNK_SERIES)
        return out.T.reshape(days, height, cube.shape[2])[:, :, halo : halo + width].copy()

    def _plan(self):
        """The member as an ONNX Runtime session (smdown.mapping.inference; built and checked against the model once, cached),
        or None: the model is not of the shape it handles, or SMDOWN_INFERENCE=tensorflow asks for TensorFlow (and
        scikit-learn for the forest)."""
        if os.environ.get("SMDOWN_INFERENCE", "numpy") == "tensorflow":
            return None
        if "_onnx_plan" not in self.__dict__:
            from smdown.mapping import inference

            if self.name == "rf":
                self.__dict__["_onnx_plan"] = inference.forest_plan(self.model)
            else:
                spin = self.meta["sequence_days"] - 1 if self.name == "lstm" else 0
                self.__dict__["_onnx_plan"] = inference.plan(self.name, self.model, spin)
        return self.__dict__["_onnx_plan"]

    def _predict_onnx(self, fast, cube: np.ndarray, halo: int, days: int, height: int, width: int) -> np.ndarray:
        """_predict_cube through ONNX Runtime: the same pieces of the cube as the TensorFlow path."""
        if self.name == "cnn":
            inner = self.halo
            out = np.empty((days, height, width), np.float32)
            fast.conv_days(cube[:, halo - inner : halo + height + inner, halo - inner : halo + width + inner], out)
            return out
        if self.name == "dnn":
            rows = cube.reshape(-1, cube.shape[-1])
            out = np.empty(len(rows), np.float32)
            fast.dense_rows(rows, out)
            return out.reshape(cube.shape[:3])[:, halo : halo + height, halo : halo + width].copy()
        band = cube[:, halo : halo + height].reshape(days, -1, cube.shape[-1])  # (days, pixels, F), a view
        out = np.empty(band.shape[:2], np.float32)
        fast.series(band, out)
        return out.reshape(days, height, cube.shape[2])[:, :, halo : halo + width].copy()

    def _compiled(self):
        """The model as one graph function (cached on the member). Graph mode, not XLA: for the DNN's dense layers
        and the CNN's convolutions TensorFlow's own (oneDNN) kernels took less CPU time than XLA's."""
        if "_fn" not in self.__dict__:
            import tensorflow as tf

            model = self.model
            self.__dict__["_fn"] = tf.function(lambda x: model(x, training=False))
        return self.__dict__["_fn"]

    def _compiled_series(self):
        """The LSTM on (pixels, days, F) series with the spin-up (first day repeated) added and cut inside one
        XLA-compiled function (its time loop fused: a third of the CPU time of `predict`): (pixels, days). Where the
        model splits into its recurrent part and a per-day head (`_lstm_parts`), the head skips the spin-up days."""
        if "_series_fn" not in self.__dict__:
            import tensorflow as tf

            model, spin = self.model, self.meta["sequence_days"] - 1
            parts = _lstm_parts(model) if spin else None

            def run(x):
                series = tf.concat([tf.repeat(x[:, :1], spin, axis=1), x], axis=1) if spin else x
                if parts is None:
                    return model(series, training=False)[:, spin:, 0]
                recurrent, head = parts
                return head([recurrent(series, training=False)[:, spin:], x], training=False)[..., 0]

            self.__dict__["_series_fn"] = tf.function(run, jit_compile=True)
        return self.__dict__["_series_fn"]


def _lstm_parts(model, spin: int = 3):
    """(recurrent, head): the model up to its one LSTM layer (returning sequences), and the rest as a model of that
    layer's output and the model's input. Where the head works day by day (as the built LSTM's dense head does),
    running it on the days after the spin-up only gives the same numbers for less work: checked on random series,
    and None where it does not hold or the model is not of that shape."""
    keras = _keras()
    recurrent = [layer for layer in model.layers if isinstance(layer, keras.layers.RNN | keras.layers.LSTM)]
    if len(recurrent) != 1 or not getattr(recurrent[0], "return_sequences", False) or len(model.inputs) != 1:
        return None
    try:
        parts = (keras.Model(model.inputs, recurrent[0].output),
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


def _rf_predict(model, x: np.ndarray) -> np.ndarray:
    """NaN where a feature is NaN (the rows are copied only then)."""
    ok = np.isfinite(x).all(axis=1)
    if ok.all():
        return model.predict(x).astype(np.float32)
    out = np.full(len(x), np.nan, dtype=np.float32)
    if ok.any():
        out[ok] = model.predict(x[ok])
    return out


def model_path(directory: str | Path, name: str) -> Path:
    return Path(directory) / (f"{name}.joblib" if name == "rf" else f"{name}.keras")


def save_meta(path: str | Path, meta: dict) -> None:
    with io.atomic_path(path) as tmp:
        tmp.write_text(json.dumps(meta, indent=2))


def load_member(path: str | Path, expected_signature: str | None = None) -> Member:
    """Load a member and its sidecar; refuse one trained for other features or settings."""
    from smdown.io import InputError

    path = Path(path)
    meta_path = path.with_suffix(".json")
    if not path.exists() or not meta_path.exists():
        raise InputError(f"{path}: model file or its metadata {meta_path.name} not found")
    meta = json.loads(meta_path.read_text())
    if expected_signature is not None and meta.get("signature") != expected_signature:
        raise InputError(
            f"{path}: model was trained with other predictors or settings (features {meta.get('features')}, "
            f"signature {meta.get('signature')}, expected {expected_signature}); retrain it"
        )
    name = meta["name"]
    if name == "rf":
        import joblib

        model = joblib.load(path)
        model.n_jobs = int(os.environ.get("SMDOWN_THREADS", os.cpu_count() or 1))
    else:
        model = _keras().saving.load_model(path)
    return Member(name, model, meta)

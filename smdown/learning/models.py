"""The ensemble members: Keras DNN, CNN and LSTM, the random-forest peer, and loading them (smdown.mapping.inference
predicts them over the blocks of a map).

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


def use_threads(threads: int) -> None:
    """Give a job's TensorFlow work the threads Snakemake granted it (TensorFlow's thread pools are the process's;
    the steps pass the same `threads` to ONNX Runtime and scikit-learn as an argument)."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def keras_module():
    """Keras, imported on first use (it pulls in TensorFlow)."""
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
    keras = keras_module()
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
    keras = keras_module()
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
            return rf_predict(self.model, samples[INPUT_FORM["rf"]])
        return predict_examples(self.name, self.model, samples)


def rf_predict(model, x: np.ndarray) -> np.ndarray:
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


def load_member(path: str | Path, expected_signature: str | None = None, threads: int = 1) -> Member:
    """Load a member and its sidecar; refuse one trained for other features or settings. `threads`: the forest's
    n_jobs (the job's threads)."""
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
        model.n_jobs = threads
    else:
        model = keras_module().saving.load_model(path)
    return Member(name, model, meta)

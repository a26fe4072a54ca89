"""Training the members on the pooled samples of the training scales."""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd

from smdown.learning.models import INPUT_FORM

log = logging.getLogger(__name__)


def load_members(paths: list[str], model_inputs: dict, threads: int = 1) -> dict:
    """The trained members of a layer, each checked against the model inputs (`config.model_inputs`) it must
    have been trained on (`threads`: the forest's n_jobs)."""
    from smdown.learning.models import load_member, signature
    from smdown.preparing.features import FeatureSpec

    expected = signature(FeatureSpec.from_dict(model_inputs["spec"]).names, model_inputs)
    return {member.name: member for member in (load_member(path, expected, threads) for path in paths)}


def bag_means(values: np.ndarray, bag: np.ndarray) -> np.ndarray:
    """Mean of per-example values within each bag (bags numbered 0..n-1 in the subset's order)."""
    _, index = np.unique(bag, return_inverse=True)
    return np.bincount(index, weights=values) / np.bincount(index)


def _bags(part: dict, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Inputs reshaped to (bags, bag size, ...) and the bag labels (the coarse value)."""
    x = part[INPUT_FORM[kind]]
    order = np.argsort(part["bag"], kind="stable")
    sizes = np.bincount(np.unique(part["bag"], return_inverse=True)[1])
    if len(set(sizes.tolist())) != 1:
        raise ValueError(f"{kind}: bags of unequal size {sorted(set(sizes.tolist()))}")
    size = int(sizes[0])
    bags = x[order].reshape((-1, size) + x.shape[1:])
    return bags, part["target"][order][::size].reshape(-1, 1)


def subset(samples: dict, code: int) -> dict[str, np.ndarray]:
    keep = samples["split"] == code
    return {key: (value[keep] if key != "features" else value) for key, value in samples.items()}


def _scaling(train: dict) -> tuple[np.ndarray, np.ndarray, float, float]:
    x = train["pixel"].astype(np.float64)
    mean = np.nanmean(x, axis=0)
    variance = np.nanvar(x, axis=0)
    y = train["target"]
    return mean.astype(np.float32), variance.astype(np.float32), float(np.mean(y)), float(np.std(y) or 1.0)


def _xy(kind: str, part: dict, y_mean: float, y_std: float):
    """Inputs, standardised targets and sample weights of one split, per pixel."""
    x = part[INPUT_FORM[kind]]
    if kind == "lstm":
        return x, ((part["target_sequence"] - y_mean) / y_std)[..., None], part["sequence_weight"]
    y = (part["target"] - y_mean) / y_std
    return x, (y.reshape(-1, 1, 1, 1) if kind == "cnn" else y.reshape(-1, 1)), None


class _EpochLog:
    """Keras callback factory that writes one progress line per epoch to the log."""

    @staticmethod
    def make(kind: str, epochs: int):
        import keras

        class EpochLog(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.start = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                logs = logs or {}
                seconds = time.perf_counter() - self.start
                log.info("%s epoch %d/%d loss %.3e val_loss %.3e (%.1f s, at most %.0f s left)", kind, epoch + 1,
                         epochs, logs.get("loss", np.nan), logs.get("val_loss", np.nan), seconds,
                         seconds * (epochs - epoch - 1))

        return EpochLog()


def seed_everything(seed: int) -> None:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def _bag_model(keras, inner, kind: str, input_shape: tuple, learning_rate: float):
    """Wrap a per-pixel model so it predicts the mean over a bag of pixels (trained on coarse values).

    A subclassed Model: a functional wrapper around the nested functional model reported a zero loss
    under Keras 3.15 (the loss was not connected to the nested outputs)."""

    class BagMean(keras.Model):
        def __init__(self, pixel_model, **kwargs):
            super().__init__(**kwargs)
            self.pixel_model = pixel_model  # an attribute, so its weights are the wrapper's trainable weights

        def call(self, x, training=None):
            flat = keras.ops.reshape(x, (-1,) + tuple(input_shape[1:]))
            y = self.pixel_model(flat, training=training)
            y = y[:, -1, 0] if kind == "lstm" else keras.ops.reshape(y, (-1,))
            return keras.ops.mean(keras.ops.reshape(y, (-1, input_shape[0])), axis=1, keepdims=True)

    model = BagMean(inner)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mse")
    return model


def train_deep(kind: str, samples: dict, hp: dict, seed: int, aggregate: bool = False, n_dynamic: int | None = None):
    """Fit one deep member; returns (per-pixel model in m3/m3, history DataFrame).

    The model learns the standardised target (so the loss and the L2 penalty weigh the same in every layer);
    the returned model has the target's scale appended. With `aggregate`, it is fitted through a bag wrapper:
    the mean of its predictions over the pixels of a coarse cell-day must match the coarse value.
    """
    import keras

    from smdown.learning.models import build, with_units

    seed_everything(seed)
    train, val = subset(samples, 0), subset(samples, 1)
    if len(train["target"]) == 0 or len(val["target"]) == 0:
        raise ValueError(f"{kind}: no training or no validation example (train {len(train['target'])}, "
                         f"val {len(val['target'])})")
    mean, variance, y_mean, y_std = _scaling(train)
    model = build(kind, len(mean), mean, variance, hp, n_dynamic)
    fitted = model
    if aggregate:
        (x, y), (xv, yv) = _bags(train, kind), _bags(val, kind)
        y, yv = (y - y_mean) / y_std, (yv - y_mean) / y_std
        w = wv = None
        fitted = _bag_model(keras, model, kind, x.shape[1:], hp["learning_rate"])
    else:
        x, y, w = _xy(kind, train, y_mean, y_std)
        xv, yv, wv = _xy(kind, val, y_mean, y_std)
    callbacks = [
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=hp["patience"], restore_best_weights=True),
        _EpochLog.make(kind, hp["epochs"]),
    ]
    log.info("%s: %d training and %d validation examples, %d features, target mean %.4f sd %.4f", kind, len(x),
             len(xv), len(mean), y_mean, y_std)
    history = fitted.fit(
        x, y, sample_weight=w, validation_data=(xv, yv, wv) if wv is not None else (xv, yv),
        epochs=hp["epochs"], batch_size=max(1, hp["batch_size"] // (x.shape[1] if aggregate else 1)),
        callbacks=callbacks, verbose=0, shuffle=True,
    )
    frame = pd.DataFrame(history.history)
    frame.insert(0, "epoch", np.arange(1, len(frame) + 1))
    return with_units(model, y_mean, y_std), frame[["epoch", "loss", "val_loss"]]


def bag_features(part: dict) -> tuple[np.ndarray, np.ndarray]:
    """Each bag's mean pixel vector (the area-mean predictors of its coarse cell-day) and its coarse value."""
    _, index = np.unique(part["bag"], return_inverse=True)
    x = part["pixel"].astype(np.float64)
    ok = np.isfinite(x).all(axis=1)
    counts = np.bincount(index[ok], minlength=index.max() + 1)
    sums = np.stack([np.bincount(index[ok], weights=x[ok, j], minlength=len(counts)) for j in range(x.shape[1])], 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = (sums / counts[:, None]).astype(np.float32)
    return means, bag_means(part["target"], part["bag"])


def train_rf(samples: dict, settings: dict, seed: int, n_jobs: int = 1):
    """Fit the random-forest peer as the downscaling literature does: at the coarse scale, on the area-mean
    predictors of each training cell-day (the mean of its bag) against the coarse value; it is then applied
    pixel by pixel at the fine scale, with the same coarse correction as the deep members. Samples without bags
    (targets cubic / coarse) are already one value per pixel of a coarser scale."""
    from sklearn.ensemble import RandomForestRegressor

    train = subset(samples, 0)
    x, y = bag_features(train) if "bag" in train and len(train["bag"]) else (train["pixel"], train["target"])
    ok = np.isfinite(x).all(axis=1) & np.isfinite(y)
    model = RandomForestRegressor(
        n_estimators=settings["trees"], max_depth=settings["max_depth"],
        min_samples_leaf=settings["min_samples_leaf"], random_state=seed, n_jobs=n_jobs,
    )
    log.info("rf: %d coarse training examples (area-mean predictors), %d trees", int(ok.sum()), settings["trees"])
    model.fit(x[ok], y[ok])
    return model

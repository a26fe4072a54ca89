"""Training examples: the split by coarse cells and day blocks, and pixel / patch / sequence samples."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from smdown.preparing.features import FeatureSpec, derive, gather

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
BAG_SHARES = (0.7, 0.2)  # of the bags drawn, for train / val (the test split is scored on the maps, not on bags)


def load(paths: list[str]) -> dict[str, np.ndarray]:
    """The samples files of a layer's training scales, pooled."""
    return pool([dict(np.load(p)) for p in paths])


def _counts(total: int, val: float, test: float) -> tuple[int, int]:
    n_test = int(round(test * total)) if test > 0 else 0
    n_val = max(1, int(round(val * total)))
    if total - n_val - n_test < 1:
        raise ValueError(f"too few units ({total}) to hold out {n_val} for validation and {n_test} for test")
    return n_val, n_test


def make_split(shape: tuple[int, int], dates: list[str], outage_dates: list[str], settings: dict, seed: int) -> dict:
    """Assign whole coarse cells and whole blocks of days to train / val / test.

    A validation or test example is in a held-out cell AND a held-out day block, so it never
    shares a cell or a day with a training example. Outage days (no coarse value) are left out.
    """
    rng = np.random.default_rng(seed)
    cells = [(r, c) for r in range(shape[0]) for c in range(shape[1])]
    order = rng.permutation(len(cells))
    if len(cells) >= 3:
        n_val, n_test = _counts(len(cells), settings["val_cells"], settings["test_cells"])
    else:  # a one- or two-cell region: split by time only
        n_val = n_test = 0
    cell_groups = {
        "val": [cells[i] for i in order[:n_val]],
        "test": [cells[i] for i in order[n_val : n_val + n_test]],
        "train": [cells[i] for i in order[n_val + n_test :]],
    }
    usable = [d for d in dates if d not in set(outage_dates)]
    block = settings["time_block_days"]
    blocks = [usable[i : i + block] for i in range(0, len(usable), block)]
    n_val_b, n_test_b = _counts(len(blocks), settings["val_days"], settings["test_days"])
    border = rng.permutation(len(blocks))
    date_groups = {
        "val": sorted(d for i in border[:n_val_b] for d in blocks[i]),
        "test": sorted(d for i in border[n_val_b : n_val_b + n_test_b] for d in blocks[i]),
        "train": sorted(d for i in border[n_val_b + n_test_b :] for d in blocks[i]),
    }
    if n_val == 0:
        cell_groups = {split: cells for split in SPLITS}
    split = {f"{name}_cells": [list(cell) for cell in cell_groups[name]] for name in SPLITS}
    split.update({f"{name}_dates": date_groups[name] for name in SPLITS})
    split["outage_dates"] = list(outage_dates)
    return split


def group_masks(split: dict, dates: list[str], shape: tuple[int, int], factor: int) -> dict[str, tuple]:
    """Per split: (day mask (T,), pixel mask (H, W)) on a grid nested `factor` times in the coarse grid."""
    masks = {}
    for name in SPLITS:
        day_mask = np.isin(dates, split[f"{name}_dates"])
        cell_mask = np.zeros((shape[0] // factor, shape[1] // factor), dtype=bool)
        for r, c in split[f"{name}_cells"]:
            cell_mask[r, c] = True
        masks[name] = (day_mask, np.repeat(np.repeat(cell_mask, factor, 0), factor, 1))
    return masks


def draw_examples(
    target: np.ndarray, features: list[np.ndarray], masks: dict, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, ...]:
    """Random (t, r, c, split code) with a finite target and finite pixel features, up to n in all."""
    finite = np.isfinite(target)
    for values in features:
        finite &= np.isfinite(values) if values.ndim == 3 else np.isfinite(values)[np.newaxis]
    picks = []
    for code, name in enumerate(SPLITS):
        day_mask, pixel_mask = masks[name]
        eligible = finite & day_mask[:, None, None] & pixel_mask[None]
        picks.append((code, np.flatnonzero(eligible)))
    total = sum(len(idx) for _, idx in picks)
    if total == 0:
        raise ValueError("no training example: every target or predictor value is NaN in the split")
    out = []
    for code, idx in picks:
        take = min(len(idx), int(round(n * len(idx) / total)))
        chosen = np.sort(rng.choice(idx, size=take, replace=False)) if take else idx[:0]
        t, r, c = np.unravel_index(chosen, target.shape)
        out.append((t, r, c, np.full(len(t), code, dtype=np.int8)))
    return tuple(np.concatenate(parts) for parts in zip(*out, strict=True))


def pad_features(features: list[np.ndarray], halo: int) -> list[np.ndarray]:
    """Pad the spatial axes by `halo` pixels, repeating edge values (as at prediction)."""
    if halo == 0:
        return features
    padded = []
    for values in features:
        width = ((0, 0),) * (values.ndim - 2) + ((halo, halo), (halo, halo))
        padded.append(np.pad(np.asarray(values), width, mode="edge"))
    return padded


def draw_bag_cells(coarse: np.ndarray, cell_masks: dict, n_bags: int, rng: np.random.Generator) -> np.ndarray:
    """The cell-day of each bag: (split code, day, cell row, cell col) rows, sorted by cell.

    `coarse` is the (T, rows, cols) coarse input and `cell_masks` the split's masks on the coarse grid
    (group_masks with factor 1). Bags are drawn with replacement over the cell-days with a coarse
    value (new pixels each time), so the held-out splits get a fixed share of them however few
    cell-days they hold.
    """
    finite = np.isfinite(coarse)
    pairs = {}
    for code, name in enumerate(SPLITS[: len(BAG_SHARES)]):
        day_mask, cell_mask = cell_masks[name]
        pairs[code] = np.argwhere(finite & day_mask[:, None, None] & cell_mask[None])  # (t, cr, cc)
    if not len(pairs[0]):
        raise ValueError("no training example: every target or predictor value is NaN in the training split")
    shares = {code: share for code, share in enumerate(BAG_SHARES) if len(pairs[code])}
    total = sum(shares.values())
    chosen = [np.column_stack([np.full(size, code), pairs[code][rng.integers(len(pairs[code]), size=size)]])
              for code, share in shares.items() for size in [int(round(n_bags * share / total))]]
    bags = np.concatenate(chosen)
    return bags[np.lexsort((bags[:, 3], bags[:, 2]))]


def pick_bag_pixels(finite: np.ndarray, bags: np.ndarray, first_id: int, bag_size: int,
                    rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """`bag_size` random pixels with finite features for each bag of one cell.

    `finite` is (T, factor, factor) over the cell; `bags` its rows of draw_bag_cells, numbered from
    `first_id`. A bag whose day has no finite pixel is dropped. Returns (t, r, c, split code, bag id)
    with r, c inside the cell.
    """
    parts = []
    for k, (code, t, _, _) in enumerate(bags):
        idx = np.flatnonzero(finite[t])
        if not len(idx):
            continue
        pick = rng.choice(idx, size=bag_size, replace=len(idx) < bag_size)
        rows, cols = np.unravel_index(pick, finite.shape[1:])
        parts.append((np.full(bag_size, t), rows, cols, np.full(bag_size, code, dtype=np.int8),
                      np.full(bag_size, first_id + k)))
    if not parts:
        return tuple(np.zeros(0, dtype=dtype) for dtype in (int, int, int, np.int8, int))
    return tuple(np.concatenate(column) for column in zip(*parts, strict=True))


def finite_pixels(features: list[np.ndarray], days: int) -> np.ndarray:
    """(T, H, W) True where every feature is finite."""
    finite = np.ones((days,) + features[-1].shape[-2:], dtype=bool)
    for values in features:
        finite &= np.isfinite(values) if values.ndim == 3 else np.isfinite(values)[np.newaxis]
    return finite


# (row, col, size, halo) -> each predictor raster over a size x size window at (row, col) of the scale's
# grid plus `halo` pixels around it, edge values repeated beyond the region (as at prediction)
CellReader = Callable[[int, int, int, int], dict[str, np.ndarray]]


def bag_samples(spec: FeatureSpec, read_cell: CellReader, coarse: np.ndarray, dates: list[str], cell_masks: dict,
                factor: int, settings: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Bags of `bag_size` random pixels of one coarse cell on one day, labelled with that cell-day's
    coarse value (the areal mean of the fine field the model must reproduce), built cell by cell.

    The bags' cell-days are drawn from the coarse input first; then only the cells that hold bags are
    read (with the CNN's halo), so memory is that of one cell's time series, not of the region.
    """
    halo = settings["patch"] // 2
    bags = draw_bag_cells(coarse, cell_masks, settings["per_scale"] // settings["bag_size"], rng)
    cells, firsts, counts = np.unique(bags[:, 2:], axis=0, return_index=True, return_counts=True)
    inner = slice(halo, halo + factor)
    parts = []
    for (cr, cc), first, count in zip(cells, firsts, counts, strict=True):
        row, col = cr * factor, cc * factor
        features = derive(spec, read_cell(row, col, factor, halo), dates)
        finite = finite_pixels([values[..., inner, inner] for values in features], len(dates))
        t, r, c, code, bag = pick_bag_pixels(finite, bags[first : first + count], first, settings["bag_size"], rng)
        field = np.broadcast_to(coarse[:, cr, cc, None, None], (len(dates),) + features[-1].shape[-2:])
        part = build_samples(spec, features, field, (t, r + halo, c + halo, code, bag), settings["patch"],
                             settings["sequence_days"], cell_masks, halo_included=True)
        part["row"] += row - halo
        part["col"] += col - halo
        part["cell_row"] = np.full(len(part["target"]), cr, dtype=np.int32)
        part["cell_col"] = np.full(len(part["target"]), cc, dtype=np.int32)
        parts.append(part)
    result = pool(parts)
    if not np.any(result["split"] == 0):
        raise ValueError("no training example: the predictors are NaN on every drawn training cell-day")
    log.info("%d of %d bags drawn in %d cells kept (the others' pixels touch a NaN predictor)",
             result["bag"].max() + 1, len(bags), len(cells))
    return result


def pool(samples: list[dict]) -> dict[str, np.ndarray]:
    """Concatenate samples (of several cells or scales; same features required), bag ids kept apart."""
    names = [tuple(s["features"]) for s in samples]
    if len(set(names)) != 1:
        raise ValueError(f"samples of the training scales have different features: {names}")
    keys = [key for key in samples[0] if key not in ("features", "bag")]
    pooled = {key: np.concatenate([s[key] for s in samples]) for key in keys}
    offsets = np.cumsum([0] + [int(s["bag"].max()) + 1 if len(s["bag"]) else 0 for s in samples[:-1]])
    pooled["bag"] = np.concatenate([s["bag"] + offset for s, offset in zip(samples, offsets, strict=True)])
    pooled["features"] = samples[0]["features"]
    return pooled


def build_samples(
    spec: FeatureSpec,
    features: list[np.ndarray],
    target: np.ndarray,
    drawn: tuple[np.ndarray, ...],
    patch: int,
    sequence_days: int,
    masks: dict,
    halo_included: bool = False,
) -> dict[str, np.ndarray]:
    """Pixel vectors (DNN, RF), patches (CNN) and sequences (LSTM) for the same drawn examples.

    `drawn` is (t, r, c, split code) or (t, r, c, split code, bag id); an example (or, with bags,
    its whole bag) whose patch or sequence touches a NaN predictor is dropped. With `halo_included`
    the features already hold the patch's halo around the pixels drawn; otherwise edges are repeated.
    """
    t, r, c, code = drawn[:4]
    bag = drawn[4] if len(drawn) > 4 else np.arange(len(t))
    halo = patch // 2
    padded, shift = (features, 0) if halo_included else (pad_features(features, halo), halo)
    offsets = np.arange(-halo, halo + 1)
    patches = gather(padded, t[:, None, None], (r + shift)[:, None, None] + offsets[None, :, None],
                     (c + shift)[:, None, None] + offsets[None, None, :])
    steps = np.arange(-sequence_days + 1, 1)
    t_seq = t[:, None] + steps[None, :]
    t_clipped = np.clip(t_seq, 0, None)  # days before the first are the first day repeated, as at prediction
    sequences = gather(features, t_clipped, r[:, None], c[:, None])
    target_sequence = target[t_clipped, r[:, None], c[:, None]]
    day_group = np.stack([masks[name][0] for name in SPLITS])[code.astype(int)[:, None], t_clipped]
    complete = np.isfinite(patches).all(axis=(1, 2, 3)) & np.isfinite(sequences).all(axis=(1, 2))
    broken_bags = np.unique(bag[~complete])
    keep = np.flatnonzero(~np.isin(bag, broken_bags))
    weight = (np.isfinite(target_sequence) & (t_seq >= 0) & day_group & (steps >= -(sequence_days // 2))[None, :])
    return {
        "features": np.array(spec.names),
        "pixel": gather(features, t, r, c)[keep],
        "patch": patches[keep],
        "sequence": sequences[keep],
        "target": target[t, r, c].astype(np.float32)[keep],
        "target_sequence": np.nan_to_num(target_sequence, nan=0.0).astype(np.float32)[keep],
        "sequence_weight": weight.astype(np.float32)[keep],
        "split": code[keep],
        "bag": np.unique(bag[keep], return_inverse=True)[1],
        "t": t[keep],
        "row": r[keep],
        "col": c[keep],
    }

"""The self-similarity check: within-cell skill measured without any fine truth.

The downscaling rests on scale invariance: a member that learns from coarse cell means how soil moisture is spread
inside a cell should, trained the same way one level up, tell how it is spread among the coarse cells. So the
training cells are grouped in pairs of neighbours on the same day: a member trained on the pair means (bags holding
both cells' pixels, labelled with the mean of the two coarse values) is scored on how well it recovers the known
difference between the two cells, on days it was not fitted on. A flat (collapsed) member scores 1, one that paints
detail that is not there scores above 1. This is the signal the tuning minimises and the ensemble reports, since
the coarse validation loss cannot see the detail inside a cell (it falls as the penalty weakens, whatever the
detail does).
"""

from __future__ import annotations

import numpy as np

BLOCK_DAYS = 4  # pairs are split into fit and score days by blocks of this many training days
SCORE_EVERY = 3  # one block in three scores, the others fit
MIN_PAIRS = 12  # fewer pairs than this in the fit or the score part: no check (too few neighbouring cells)


def _bag_starts(part: dict) -> tuple[np.ndarray, np.ndarray, int]:
    """The examples in bag order, the position of each bag's first example in that order, and the bag size."""
    order = np.argsort(part["bag"], kind="stable")
    _, starts, sizes = np.unique(part["bag"][order], return_index=True, return_counts=True)
    if len(set(sizes.tolist())) != 1:
        raise ValueError(f"bags of unequal size {sorted(set(sizes.tolist()))}")
    return order, starts, int(sizes[0])


def neighbour_pairs(day: np.ndarray, row: np.ndarray, col: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(a, b) indices of bags of horizontally or vertically adjacent cells on the same day, each bag of a cell-day
    paired at most once with each neighbouring cell-day (bags drawn several times at one cell-day pair one to one)."""
    table: dict[tuple, list[int]] = {}
    for index, key in enumerate(zip(day.tolist(), row.tolist(), col.tolist(), strict=True)):
        table.setdefault(key, []).append(index)
    pairs = []
    for (t, r, c), bags in table.items():
        for dr, dc in ((0, 1), (1, 0)):
            other = table.get((t, r + dr, c + dc))
            if other:
                pairs.extend(zip(rng.permutation(bags).tolist(), rng.permutation(other).tolist(), strict=False))
    return np.array(pairs, dtype=int).reshape(-1, 2)


def score_days(day: np.ndarray) -> np.ndarray:
    """True for the days (of `day`, one per pair) whose block of BLOCK_DAYS training days scores."""
    days = np.unique(day)
    block = np.searchsorted(days, day) // BLOCK_DAYS
    return block % SCORE_EVERY == SCORE_EVERY - 1


def pair_samples(samples: dict, rng: np.random.Generator, max_pairs: int) -> dict | None:
    """The training bags regrouped into pairs of neighbouring cells (split code 0: fit days, 1: score days).

    Each pair is one bag of twice the bag size (its first half one cell, its second the other) labelled with the
    pair's mean; `cell_target` holds each half's own coarse value. None when the samples carry no cells (targets
    other than `aggregate`) or too few neighbouring training cells to score (regions of one or two cells)."""
    if "cell_row" not in samples:
        return None
    in_train = np.flatnonzero(samples["split"] == 0)  # indices into samples: the big arrays are gathered once
    if not len(in_train):
        return None
    train = {key: samples[key][in_train] for key in ("bag", "t", "cell_row", "cell_col", "target")}
    order, starts, size = _bag_starts(train)
    first = order[starts]
    pairs = neighbour_pairs(train["t"][first], train["cell_row"][first], train["cell_col"][first], rng)
    if len(pairs) > max_pairs:
        pairs = pairs[np.sort(rng.choice(len(pairs), size=max_pairs, replace=False))]
    code = score_days(train["t"][first][pairs[:, 0]]).astype(np.int8)
    if min(int((code == 0).sum()), int((code == 1).sum())) < MIN_PAIRS:
        return None
    members = starts[pairs][..., None] + np.arange(size)  # (pairs, 2, size) positions in bag order
    index = in_train[order[members].reshape(-1)]
    per_example = [key for key, value in samples.items() if key != "features" and len(value) == len(samples["bag"])]
    out = {key: samples[key][index] for key in per_example}
    cell_target = train["target"][first][pairs]  # (pairs, 2)
    out["bag"] = np.repeat(np.arange(len(pairs)), 2 * size)
    out["target"] = np.repeat(cell_target.mean(axis=1), 2 * size).astype(np.float32)
    out["cell_target"] = np.repeat(cell_target, size, axis=1).reshape(-1).astype(np.float32)
    out["split"] = np.repeat(code, 2 * size)
    out["features"] = samples["features"]
    return out


def within_pair_skill(pred: np.ndarray, pairs: dict) -> dict[str, float]:
    """How well per-pixel predictions of the score pairs recover the difference between the two cells of each pair:
    nmse (mean squared error of the difference over its mean square: 1 for a flat field), r, and ratio (spread of
    the predicted differences over that of the known ones)."""
    keep = pairs["split"] == 1
    n_pairs = len(np.unique(pairs["bag"][keep]))
    halves = np.nanmean(np.asarray(pred, dtype=np.float64)[keep].reshape(n_pairs, 2, -1), axis=2)
    truth = pairs["cell_target"][keep].reshape(n_pairs, 2, -1)[:, :, 0].astype(np.float64)
    predicted, known = halves[:, 0] - halves[:, 1], truth[:, 0] - truth[:, 1]
    ok = np.isfinite(predicted)
    predicted, known = predicted[ok], known[ok]
    power = float(np.mean(known**2)) or 1.0
    spread = float(np.std(known)) or 1.0
    r = float(np.corrcoef(predicted, known)[0, 1]) if np.std(predicted) > 0 else 0.0
    return {"nmse": float(np.mean((predicted - known) ** 2)) / power, "r": r, "ratio": float(np.std(predicted)) / spread}

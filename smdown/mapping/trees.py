"""The random forest's trees compiled by numba, walked as leaf bitmasks (QuickScorer, Lucchese et al. 2015), with
what stays constant computed once: a block's static features once a pixel, its features that one day holds at one
value over the pixels once a day.

Each tree's leaves are numbered left to right; a split node that sends a row right rules out the leaves of its left
subtree. ANDing the masks of every node a row goes right at and taking the lowest leaf left gives the tree's leaf
(the one the walk from the root reaches). A node goes right where x > threshold, so for each feature the masks of
the nodes a value goes right at are those whose threshold lies below it: one table a feature, indexed by the number
of the forest's thresholds on it below the value (a binary search), holds their AND for every tree. Since AND
commutes, a pixel's static features (dem, soil, terrain: the same every day) make one mask a tree, once per pixel,
and so do the features that hold one value over the pixels of a chunk on a day (day of year; the demo's
precipitation over a coarse cell); only the rest is looked up per pixel-day.

The thresholds are scikit-learn's float64 ones and a value is compared as float64, as scikit-learn compares its
float32 input, and the trees' values are summed in float64 in the trees' order and divided by their number, as
scikit-learn's RandomForestRegressor.predict does: the same float32 numbers (checked against scikit-learn when the
plan is built, smdown.mapping.inference.forest_plan).
numba compiles the kernels on first use (about 5 s) and keeps them in its cache (__pycache__, or its user-wide
cache where that is read-only), which later processes load in a fraction of a second.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numba.cpython.unsafe.numbers import trailing_zeros

ALL = np.uint64(0xFFFFFFFFFFFFFFFF)


class Forest:
    """A fitted scikit-learn forest of regression trees (one output) as leaf-mask tables."""

    def __init__(self, model):
        trees = [estimator.tree_ for estimator in model.estimators_]
        if not trees or any(tree.n_outputs != 1 for tree in trees):
            raise ValueError("not a forest of single-output trees")
        n_features = int(model.n_features_in_)
        leaves = [np.flatnonzero(tree.children_left == -1) for tree in trees]
        words = (max(len(x) for x in leaves) + 63) // 64
        values = np.zeros((len(trees), 64 * words), np.float64)
        splits: list[list[tuple[float, int, np.ndarray]]] = [[] for _ in range(n_features)]
        for t, tree in enumerate(trees):
            first, last = _leaf_spans(tree)
            for leaf in leaves[t]:
                values[t, first[leaf]] = tree.value[leaf, 0, 0]
            for node in np.flatnonzero(tree.children_left != -1):
                mask = np.full(64 * words, True)
                left = tree.children_left[node]
                mask[first[left] : last[left]] = False  # going right rules out the left subtree's leaves
                splits[tree.feature[node]].append((float(tree.threshold[node]), t, _pack(mask)))
        thresholds, offsets, tables, table_offsets = [], [0], [], [0]
        for feature in range(n_features):
            unique = sorted({s[0] for s in splits[feature]})
            index = {value: i for i, value in enumerate(unique)}
            table = np.full((len(unique) + 1, len(trees), words), ALL, np.uint64)
            for value, t, mask in sorted(splits[feature], key=lambda s: s[0]):
                table[index[value] + 1 :, t] &= mask  # every value above the threshold goes right at it
            thresholds += unique
            offsets.append(len(thresholds))
            tables.append(table)
            table_offsets.append(table_offsets[-1] + len(table))
        self.thresholds = np.asarray(thresholds, np.float64)
        self.offsets = np.asarray(offsets, np.int64)
        self.tables = np.ascontiguousarray(np.concatenate(tables).reshape(table_offsets[-1], len(trees) * words))
        self.table_offsets = np.asarray(table_offsets, np.int64)
        self.values = values
        self.words = words
        self.n_features = n_features

    def predict(self, cube: np.ndarray, out: np.ndarray, start: int, stop: int) -> None:
        """cube (T, H, W, F) float32 (any strides) -> out (T, H, W) float32, for the pixels start:stop of the
        block's pixels in row order (releases the GIL)."""
        _predict(cube, out, start, stop, self.thresholds, self.offsets, self.tables, self.table_offsets, self.values,
                 self.words)


def _leaf_spans(tree) -> tuple[np.ndarray, np.ndarray]:
    """Each node's first leaf and one past its last, leaves numbered left to right."""
    first = np.zeros(tree.node_count, np.int64)
    last = np.zeros(tree.node_count, np.int64)
    count, stack = 0, [(0, False)]
    while stack:
        node, done = stack.pop()
        if tree.children_left[node] == -1:
            first[node], last[node] = count, count + 1
            count += 1
        elif done:
            first[node] = first[tree.children_left[node]]
            last[node] = last[tree.children_right[node]]
        else:
            stack += [(node, True), (tree.children_right[node], False), (tree.children_left[node], False)]
    return first, last


def _pack(bits: np.ndarray) -> np.ndarray:
    """Booleans (64 x words), leaf i at bit i % 64 of word i // 64 -> uint64 words."""
    weights = np.uint64(1) << np.arange(64, dtype=np.uint64)
    return (bits.reshape(-1, 64).astype(np.uint64) * weights).sum(axis=1, dtype=np.uint64)


@njit(nogil=True, cache=True)
def _below(thresholds, lo, hi, x):
    """How many of thresholds[lo:hi] (ascending) lie below x."""
    a, b = lo, hi
    while a < b:
        mid = (a + b) >> 1
        if thresholds[mid] < x:
            a = mid + 1
        else:
            b = mid
    return a - lo


@njit(nogil=True, cache=True)
def _predict(cube, out, start, stop, thresholds, offsets, tables, table_offsets, values, words):
    days, width, n_features = cube.shape[0], cube.shape[2], cube.shape[3]
    n_trees = values.shape[0]
    masks = tables.shape[1]
    n = stop - start
    # the features each pixel holds every day, and those each day holds over the chunk's pixels
    static = np.ones(n_features, np.bool_)
    for f in range(n_features):
        for p in range(start, stop):
            r, c = p // width, p % width
            x = cube[0, r, c, f]
            for d in range(1, days):
                if cube[d, r, c, f] != x:
                    static[f] = False
                    break
            if not static[f]:
                break
    pixel = np.empty((n, masks), np.uint64)
    for i in range(n):
        r, c = (start + i) // width, (start + i) % width
        pixel[i, :] = ALL
        for f in range(n_features):
            if static[f] and offsets[f + 1] > offsets[f]:
                row = table_offsets[f] + _below(thresholds, offsets[f], offsets[f + 1], np.float64(cube[0, r, c, f]))
                for q in range(masks):
                    pixel[i, q] &= tables[row, q]
    day = np.empty(masks, np.uint64)
    mask = np.empty(masks, np.uint64)
    varying = np.empty(n_features, np.int64)
    r0, c0 = start // width, start % width
    for d in range(days):
        day[:] = ALL
        k = 0
        for f in range(n_features):
            if static[f] or offsets[f + 1] == offsets[f]:
                continue
            x = cube[d, r0, c0, f]
            same = True
            for p in range(start + 1, stop):
                if cube[d, p // width, p % width, f] != x:
                    same = False
                    break
            if same:
                row = table_offsets[f] + _below(thresholds, offsets[f], offsets[f + 1], np.float64(x))
                for q in range(masks):
                    day[q] &= tables[row, q]
            else:
                varying[k] = f
                k += 1
        for i in range(n):
            r, c = (start + i) // width, (start + i) % width
            for q in range(masks):
                mask[q] = pixel[i, q] & day[q]
            for j in range(k):
                f = varying[j]
                row = table_offsets[f] + _below(thresholds, offsets[f], offsets[f + 1], np.float64(cube[d, r, c, f]))
                for q in range(masks):
                    mask[q] &= tables[row, q]
            total = 0.0
            for t in range(n_trees):
                for w in range(words):
                    m = mask[t * words + w]
                    if m != 0:
                        total += values[t, 64 * w + trailing_zeros(m)]
                        break
            out[d, r, c] = total / n_trees

"""The LSTM member's forward pass compiled by numba: the recurrence and its dense head over a piece of a block's
pixels, their whole series, in one kernel.

ONNX Runtime's LSTM runs the recurrence one day at a time over a batch of pixels with a matrix product and scalar
gate functions per call, and its head as separate matrix products over all the days; for the member's narrow layers
(16 units, a head of 32) that is more calls and passes over memory than arithmetic. Here a piece of pixels is held
pixel-minor (each unit's values of the piece side by side), so every step is a few hundred vector multiply-adds of the
CPU's width over arrays that stay in its caches, and the gates' sigmoid and tanh are one rational function (Eigen's
float32 tanh, within a few units of the last place of float32; sigmoid(x) = (1 + tanh(x / 2)) / 2) that vectorizes.
A pixel's static inputs to the head (terrain, soil: the same every day) are multiplied once for all its days where
they are; the head runs on the days after the spin-up only.

float32 throughout (float64 accumulation would halve the vector width): the numbers differ from Keras's by a few
units of float32's last place (smdown.mapping.inference checks them against the model when the plan is built).
numba compiles the kernel on first use (a few seconds) and keeps it in its cache.
"""

from __future__ import annotations

import numpy as np
from numba import njit

F32 = np.float32
_CLAMP = F32(7.90531110763549805)
_A1, _A3, _A5, _A7 = F32(4.89352455891786e-03), F32(6.37261928875436e-04), F32(1.48572235717979e-05), F32(5.12229709037114e-08)
_A9, _A11, _A13 = F32(-8.60467152213735e-11), F32(2.00018790482477e-13), F32(-2.76076847742355e-16)
_B0, _B2, _B4, _B6 = F32(4.89352518554385e-03), F32(2.26843463243900e-03), F32(1.18534705686654e-04), F32(1.19825839466702e-06)
_HALF, _ONE, _ZERO = F32(0.5), F32(1.0), F32(0.0)
_FLAGS = {"contract"}  # fused multiply-adds; no reassociation, no approximate reciprocals


class Recurrent:
    """The folded LSTM of smdown.mapping.inference._plan_lstm as the kernel's arrays: the gates' weights of the
    inputs that feed the recurrence (those with a non-zero kernel row) and of the state, in ONNX Runtime's gate
    order (i, o, f, c); the head's layers, the first split into the state's rows and the static inputs' rows."""

    def __init__(self, lstm: dict, layers: list):
        kernel = np.asarray(lstm["kernel"], np.float32)  # (4 u, F)
        self.units = int(lstm["units"])
        self.inputs = np.flatnonzero(np.any(kernel != 0, axis=0)).astype(np.int64)
        padded = -(-len(self.inputs) // 4) * 4  # zero rows: every pass of the kernel takes four
        wx = np.zeros((padded, 4 * self.units), np.float32)
        wx[: len(self.inputs)] = kernel[:, self.inputs].T
        wr = np.asarray(lstm["recurrent"], np.float32).T  # (u, 4 u)
        self.gates = np.ascontiguousarray(np.vstack([wx, wr])).ravel()  # (padded inputs + u, 4 u)
        self.bias = np.asarray(lstm["bias"], np.float32)
        static = lstm["static"]
        static = np.zeros((kernel.shape[1], layers[0].w.shape[1]), np.float32) if static is None else static
        self.statics = np.flatnonzero(np.any(static != 0, axis=1)).astype(np.int64)
        self.ws = np.ascontiguousarray(np.asarray(static, np.float32)[self.statics])  # (n static, width 0)
        widths = [layers[0].w.shape[0]] + [layer.w.shape[1] for layer in layers]
        if widths[0] != self.units or widths[-1] != 1 or any(
                a.w.shape[1] != b.w.shape[0] for a, b in zip(layers, layers[1:], strict=False)):
            raise ValueError("the head's layers do not chain")
        self.head = np.concatenate([np.asarray(layer.w, np.float32).ravel() for layer in layers])
        self.head_bias = np.concatenate([np.asarray(layer.b, np.float32).ravel() for layer in layers])
        self.widths = np.asarray(widths, np.int64)
        self.relu = np.asarray([layer.relu for layer in layers], np.bool_)

    def predict(self, cube: np.ndarray, out: np.ndarray, start: int, stop: int, spin: int) -> None:
        """cube (T, P, F) float32 time-major (any strides), out (T, P) float32: the pixels start:stop, their series
        after `spin` days of the first day repeated (releases the GIL)."""
        _series(cube, out, start, stop, spin, self.inputs, self.gates, self.bias, self.statics, self.ws,
                self.head, self.head_bias, self.widths, self.relu)


@njit(inline="always", fastmath=_FLAGS, error_model="numpy")
def _tanh(x):
    """Eigen's float32 rational tanh (generic_fast_tanh_float)."""
    x = _CLAMP if x > _CLAMP else x
    x = -_CLAMP if x < -_CLAMP else x
    x2 = x * x
    p = x2 * _A13 + _A11
    p = x2 * p + _A9
    p = x2 * p + _A7
    p = x2 * p + _A5
    p = x2 * p + _A3
    p = x2 * p + _A1
    p = x * p
    q = x2 * _B6 + _B4
    q = x2 * q + _B2
    q = x2 * q + _B0
    return p / q


@njit(inline="always", fastmath=_FLAGS, error_model="numpy")
def _sigmoid(x):
    return _HALF + _HALF * _tanh(_HALF * x)


@njit(nogil=True, cache=True, fastmath=_FLAGS, error_model="numpy")
def _series(cube, out, start, stop, spin, inputs, wg, bias, statics, ws, head, head_bias, widths, relu):
    days = cube.shape[0]
    n = stop - start
    units = bias.shape[0] // 4
    n_gates = 4 * units
    rows = wg.shape[0] // n_gates  # the inputs (padded to a multiple of 4 with zero rows), then the state
    n_in = inputs.shape[0]
    widest = 1
    for w in widths:
        widest = max(widest, w)
    # every array flat, a unit's (or an input's) values of the piece's pixels side by side; the gates' sources, the
    # day's inputs and the state, in one
    source = np.zeros(rows * n, np.float32)
    h = source[(rows - units) * n :]
    gates = np.empty(n_gates * n, np.float32)
    c = np.zeros(units * n, np.float32)
    a = np.empty(widest * n, np.float32)
    b = np.empty(widest * n, np.float32)
    first = widths[1]
    # the static inputs' share of the head's first layer: once for every day where the pixels' values are the same
    # every day (as a block's static features are), else day by day
    fixed = np.empty(first * n, np.float32)
    constant = _constant(cube, start, n, statics)
    if constant:
        _static_share(cube, 0, start, n, statics, ws, head_bias, fixed)
    m = units * n
    for step in range(spin + days):
        d = step - spin if step >= spin else 0
        for k in range(n_in):
            f = inputs[k]
            row = source[k * n : (k + 1) * n]
            for p in range(n):
                row[p] = cube[d, start + p, f]
        for g in range(n_gates):
            gates[g * n : (g + 1) * n] = bias[g]
        _layer(gates, source, rows, n, wg, n_gates)
        # the gates' functions over whole rows, then the cell and the state
        sigmoids, tanhs = gates[: 3 * m], gates[3 * m :]
        for q in range(sigmoids.shape[0]):
            sigmoids[q] = _sigmoid(sigmoids[q])
        for q in range(tanhs.shape[0]):
            tanhs[q] = _tanh(tanhs[q])
        _cell(gates[:m], gates[m : 2 * m], gates[2 * m : 3 * m], tanhs, c, h)
        if step < spin:
            continue
        # the head: its first layer on the state and the static inputs, then the rest
        if not constant:
            _static_share(cube, d, start, n, statics, ws, head_bias, fixed)
        a[: first * n] = fixed
        _layer(a, h, units, n, head, first)
        if relu[0]:
            _relu(a[: first * n])
        offset = units * first
        bias_offset = first
        src, dst = a, b
        for layer in range(1, widths.shape[0] - 1):
            n_from, n_to = widths[layer], widths[layer + 1]
            for o in range(n_to):
                dst[o * n : (o + 1) * n] = head_bias[bias_offset + o]
            _layer(dst, src, n_from, n, head[offset : offset + n_from * n_to], n_to)
            if relu[layer]:
                _relu(dst[: n_to * n])
            offset += n_from * n_to
            bias_offset += n_to
            src, dst = dst, src
        for p in range(n):
            out[d, start + p] = src[p]


@njit(inline="always", fastmath=_FLAGS, error_model="numpy")
def _layer(dst, src, count, n, w, n_cols):
    """dst[o * n : (o + 1) * n] += sum over k < count of w[k * n_cols + o] * src[k * n : (k + 1) * n] for every
    o < n_cols: four outputs by four inputs a pass where they fill it (each value loaded once for 16 multiply-adds).
    Views indexed from 0 by the loop's counter (indices numba knows are not negative), so the loops vectorize."""
    o = 0
    while o + 4 <= n_cols:
        r0, r1, r2, r3 = dst[o * n : (o + 1) * n], dst[(o + 1) * n : (o + 2) * n], dst[(o + 2) * n : (o + 3) * n], \
            dst[(o + 3) * n : (o + 4) * n]
        k = 0
        while k + 4 <= count:
            a0, b0, c0, d0 = w[k * n_cols + o], w[k * n_cols + o + 1], w[k * n_cols + o + 2], w[k * n_cols + o + 3]
            k1 = (k + 1) * n_cols + o
            a1, b1, c1, d1 = w[k1], w[k1 + 1], w[k1 + 2], w[k1 + 3]
            k2 = (k + 2) * n_cols + o
            a2, b2, c2, d2 = w[k2], w[k2 + 1], w[k2 + 2], w[k2 + 3]
            k3 = (k + 3) * n_cols + o
            a3, b3, c3, d3 = w[k3], w[k3 + 1], w[k3 + 2], w[k3 + 3]
            s0, s1 = src[k * n : (k + 1) * n], src[(k + 1) * n : (k + 2) * n]
            s2, s3 = src[(k + 2) * n : (k + 3) * n], src[(k + 3) * n : (k + 4) * n]
            for p in range(n):
                x0, x1, x2, x3 = s0[p], s1[p], s2[p], s3[p]
                r0[p] += a0 * x0 + a1 * x1 + a2 * x2 + a3 * x3
                r1[p] += b0 * x0 + b1 * x1 + b2 * x2 + b3 * x3
                r2[p] += c0 * x0 + c1 * x1 + c2 * x2 + c3 * x3
                r3[p] += d0 * x0 + d1 * x1 + d2 * x2 + d3 * x3
            k += 4
        while k < count:
            a0, b0, c0, d0 = w[k * n_cols + o], w[k * n_cols + o + 1], w[k * n_cols + o + 2], w[k * n_cols + o + 3]
            s0 = src[k * n : (k + 1) * n]
            for p in range(n):
                x0 = s0[p]
                r0[p] += a0 * x0
                r1[p] += b0 * x0
                r2[p] += c0 * x0
                r3[p] += d0 * x0
            k += 1
        o += 4
    while o < n_cols:
        _accumulate(dst, o * n, src, count, n, w, o, n_cols)
        o += 1


@njit(inline="always", fastmath=_FLAGS, error_model="numpy")
def _accumulate(dst, at, src, count, n, w, col, n_cols):
    """dst[at : at + n] += sum over k < count of w[k * n_cols + col] * src[k * n : k * n + n], four rows of src
    a pass."""
    row = dst[at : at + n]
    k = 0
    while k + 4 <= count:
        w0, w1 = w[k * n_cols + col], w[(k + 1) * n_cols + col]
        w2, w3 = w[(k + 2) * n_cols + col], w[(k + 3) * n_cols + col]
        s0, s1 = src[k * n : (k + 1) * n], src[(k + 1) * n : (k + 2) * n]
        s2, s3 = src[(k + 2) * n : (k + 3) * n], src[(k + 3) * n : (k + 4) * n]
        for p in range(n):
            row[p] += w0 * s0[p] + w1 * s1[p] + w2 * s2[p] + w3 * s3[p]
        k += 4
    while k < count:
        w0 = w[k * n_cols + col]
        s0 = src[k * n : (k + 1) * n]
        for p in range(n):
            row[p] += w0 * s0[p]
        k += 1


@njit(inline="always", fastmath=_FLAGS, error_model="numpy")
def _relu(x):
    for p in range(x.shape[0]):
        x[p] = x[p] if x[p] > _ZERO else _ZERO


@njit(inline="never", fastmath=_FLAGS, error_model="numpy")
def _cell(i, o, f, g, c, h):
    """c = f c + i g, h = o tanh(c) on the activated gates."""
    for q in range(c.shape[0]):
        cell = f[q] * c[q] + i[q] * g[q]
        c[q] = cell
        h[q] = o[q] * _tanh(cell)


@njit(inline="always")
def _constant(cube, start, n, statics):
    """Whether the static inputs hold the same values every day at the piece's pixels."""
    for s in range(statics.shape[0]):
        f = statics[s]
        for d in range(1, cube.shape[0]):
            for p in range(n):
                if cube[d, start + p, f] != cube[0, start + p, f]:
                    return False
    return True


@njit(inline="always", fastmath=_FLAGS, error_model="numpy")
def _static_share(cube, d, start, n, statics, ws, head_bias, fixed):
    """fixed[o * n + p] = the head's first bias + the static inputs' rows of its weights times pixel p's inputs on
    day d."""
    for o in range(fixed.shape[0] // n):
        row = fixed[o * n : (o + 1) * n]
        row[:] = head_bias[o]
        for s in range(statics.shape[0]):
            w = ws[s, o]
            f = statics[s]
            for p in range(n):
                row[p] += w * cube[d, start + p, f]

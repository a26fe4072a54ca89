"""Time: putting sparse or cloudy dynamic predictors onto the daily dates of the coarse input.

Method (documented in the README): for each pixel and each target day, linear interpolation in
time between the nearest valid observation before and after that day. Before the first or
after the last valid observation the nearest valid value is carried up to `max_gap_days`
away; a gap between two valid observations longer than `max_gap_days` is not bridged and
stays NaN (an honest gap rather than an invention). Observations are read as they are: a cloud-masked NaN is "no observation".
"""

from __future__ import annotations

import datetime as dt

import numpy as np


def day_numbers(dates: list[str]) -> np.ndarray:
    """Dates (YYYY-MM-DD) as integer day numbers."""
    return np.array([dt.date.fromisoformat(d).toordinal() for d in dates], dtype=np.int64)


def day_of_year(dates: list[str]) -> np.ndarray:
    return np.array([dt.date.fromisoformat(d).timetuple().tm_yday for d in dates], dtype=np.float32)


def fill_to_dates(data: np.ndarray, src_dates: list[str], dst_dates: list[str], max_gap_days: int) -> np.ndarray:
    """Interpolate a (n_obs, ...) stack observed on src_dates onto dst_dates, per pixel (see module doc)."""
    src = day_numbers(src_dates)
    dst = day_numbers(dst_dates)
    n_obs = data.shape[0]
    flat = data.reshape(n_obs, -1)
    valid = np.isfinite(flat)
    order = np.arange(n_obs)[:, None]
    prev_valid = np.maximum.accumulate(np.where(valid, order, -1), axis=0)
    next_valid = np.minimum.accumulate(np.where(valid, order, n_obs)[::-1], axis=0)[::-1]

    out = np.full((len(dst), flat.shape[1]), np.nan, dtype=np.float32)
    for i, day in enumerate(dst):
        j = np.searchsorted(src, day, side="right") - 1
        k = np.searchsorted(src, day, side="left")
        before = prev_valid[j] if j >= 0 else np.full(flat.shape[1], -1)
        after = next_valid[k] if k < n_obs else np.full(flat.shape[1], n_obs)
        has_before = before >= 0
        has_after = after < n_obs
        b = np.clip(before, 0, n_obs - 1)
        a = np.clip(after, 0, n_obs - 1)
        cols = np.arange(flat.shape[1])
        v_before = flat[b, cols]
        v_after = flat[a, cols]
        gap_before = day - src[b]
        gap_after = src[a] - day
        both = has_before & has_after
        span = np.where(both, src[a] - src[b], 1)
        weight = np.where(span > 0, gap_before / np.maximum(span, 1), 0.0)
        interp = v_before + weight * (v_after - v_before)
        value = np.where(both, interp, np.where(has_before, v_before, v_after))
        near_before = has_before & (gap_before <= max_gap_days)
        near_after = has_after & (gap_after <= max_gap_days)
        ok = np.where(both, span <= max_gap_days, near_before | near_after)
        out[i] = np.where(ok, value, np.nan)
    return out.reshape((len(dst),) + data.shape[1:])


def antecedent_index(precipitation: np.ndarray, decay: float, restart: tuple[int, np.ndarray] | None = None
                     ) -> np.ndarray:
    """Antecedent precipitation index API_t = decay * API_{t-1} + P_t along axis 0 (NaN P counts as 0
    for the memory but keeps the day NaN). `restart` (day t0, state): API_{t0-1} is `state` (carried from the days
    before, as a time chunk carries it), whatever the days before t0 gave."""
    return _antecedent(precipitation, decay, restart)[0]


def antecedent_state(precipitation: np.ndarray, decay: float, start: np.ndarray) -> np.ndarray:
    """The index's memory after the last day (a NaN day counted as no rain), from `start`, its memory on the day
    before the first: what antecedent_index carries into the next day."""
    return _antecedent(precipitation, decay, (0, start))[1]


def _antecedent(precipitation, decay, restart):
    out = np.empty_like(precipitation, dtype=np.float32)
    state = np.zeros(precipitation.shape[1:], dtype=np.float32)
    for t in range(precipitation.shape[0]):
        if restart is not None and t == restart[0]:
            state = np.asarray(restart[1], dtype=np.float32)
        p = precipitation[t]
        state = decay * state + np.where(np.isfinite(p), p, 0.0)
        out[t] = np.where(np.isfinite(p), state, np.nan)
    return out, state

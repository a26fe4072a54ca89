"""Metrics on hand-computed arrays."""

import numpy as np
import pytest

from smdown.evaluating import metrics
from smdown.evaluating.metrics import METRICS, Accumulator, all_metrics


def test_hand_computed_values():
    pred = np.array([1.0, 2.0, 3.0, 4.0, np.nan, 7.0])
    ref = np.array([1.0, 2.0, 3.0, 5.0, 9.0, np.nan])
    # finite pairs: (1,1) (2,2) (3,3) (4,5): diff 0 0 0 -1
    assert metrics.n(pred, ref) == 4
    assert metrics.bias(pred, ref) == pytest.approx(-0.25)
    assert metrics.rmse(pred, ref) == pytest.approx(0.5)
    assert metrics.ubrmse(pred, ref) == pytest.approx(np.sqrt(0.25 - 0.0625))
    assert metrics.ubrmse(pred, ref) ** 2 == pytest.approx(metrics.rmse(pred, ref) ** 2 - metrics.bias(pred, ref) ** 2)
    assert metrics.r(pred, ref) == pytest.approx(np.corrcoef([1, 2, 3, 4], [1, 2, 3, 5])[0, 1])


def test_ubrmse_removes_bias_only():
    ref = np.linspace(0.1, 0.4, 20)
    assert metrics.ubrmse(ref + 0.05, ref) == pytest.approx(0.0, abs=1e-12)
    assert metrics.rmse(ref + 0.05, ref) == pytest.approx(0.05)


def test_kge():
    ref = np.array([0.1, 0.2, 0.3, 0.25, 0.15])
    assert metrics.kge(ref, ref) == pytest.approx(1.0)
    # pred = 2 * ref: r = 1, alpha = 2, beta = 2 -> 1 - sqrt(2)
    assert metrics.kge(2 * ref, ref) == pytest.approx(1 - np.sqrt(2))


def test_degenerate_cases_are_nan():
    assert np.isnan(metrics.r(np.ones(5), np.arange(5.0)))
    assert np.isnan(metrics.rmse(np.array([np.nan]), np.array([1.0])))
    assert metrics.n(np.array([np.nan]), np.array([1.0])) == 0
    out = all_metrics(np.array([np.nan]), np.array([1.0]))
    assert out["n"] == 0 and np.isnan(out["r"])


def test_anomaly_r_known_pattern():
    pattern = np.array([[1.0, -1.0], [-1.0, 1.0]])
    field = np.tile(pattern, (2, 2))  # 4x4, factor 2: same within-cell pattern in each cell
    offsets = np.kron(np.array([[0.1, 0.3], [0.2, 0.4]]), np.ones((2, 2)))
    ref = np.stack([offsets + 0.01 * field, offsets + 0.02 * field])
    # different cell means, same anomaly pattern (scaled): anomaly correlation is 1
    pred = np.stack([offsets[::-1] + 0.05 * field, 0.5 * offsets + 0.1 * field])
    assert metrics.anomaly_r(pred, ref, 2) == pytest.approx(1.0)
    assert metrics.anomaly_r(offsets - 0.01 * field, offsets + 0.01 * field, 2) == pytest.approx(-1.0)
    # constant within each cell: no anomaly variance
    assert np.isnan(metrics.anomaly_r(np.stack([offsets, offsets]), ref, 2))


def test_accumulator_matches_arrays():
    rng = np.random.default_rng(1)
    ref = rng.random((3, 6, 6))
    pred = ref + rng.normal(0, 0.1, ref.shape) + 0.02
    pred[0, 0, :3] = np.nan
    whole = all_metrics(pred, ref, factor=3)
    acc = Accumulator(3)
    for day in range(3):
        for rows in (slice(0, 3), slice(3, 6)):
            acc.update(pred[day, rows], ref[day, rows])
    parts = acc.result()
    assert list(parts) == list(METRICS)
    for key in METRICS:
        assert parts[key] == pytest.approx(whole[key], rel=1e-9)
    assert whole["r"] == pytest.approx(metrics.r(pred, ref))
    assert whole["kge"] == pytest.approx(metrics.kge(pred, ref))
    assert whole["anomaly_r"] == pytest.approx(metrics.anomaly_r(pred, ref, 3))
    assert np.isnan(all_metrics(pred, ref)["anomaly_r"])


# ---------------------------------------------------------------- seams


def test_seam_ratio_of_steps_and_of_a_smooth_field():
    k = 4
    ramp = np.tile(np.arange(16, dtype=float), (16, 1))  # the same step everywhere: ratio 1
    assert metrics.seam_ratio(ramp, k) == pytest.approx(1.0)
    # one constant per cell: no difference inside, a step across: NaN (no inside difference), then
    # a small inside gradient added makes the ratio large
    steps = np.repeat(np.repeat(np.arange(16.0).reshape(4, 4), k, 0), k, 1)
    assert np.isnan(metrics.seam_ratio(steps, k))
    seams = metrics.Seams()
    seams.update(steps + 0.01 * ramp, k)
    out = seams.result()
    # across: horizontal edges step by 1 + 0.01, vertical ones by 4; inside: 0.01 horizontally, 0 vertically
    assert out["n_across"] == 2 * 16 * 3 and out["n_inside"] == 2 * 16 * 12
    assert out["across"] == pytest.approx((1.01 + 4.0) / 2)
    assert out["inside"] == pytest.approx(0.01 / 2)
    assert out["seam_ratio"] == pytest.approx(out["across"] / out["inside"])


def test_seams_streamed_over_windows_equal_the_whole_field():
    rng = np.random.default_rng(0)
    field = rng.random((2, 12, 18))
    field[0, 3, 5] = np.nan
    whole = metrics.Seams()
    whole.update(field, 3)
    parts, cut = metrics.Seams(), metrics.Seams()
    for r in range(0, 12, 6):
        for c in range(0, 18, 9):
            # each window with one more row and column where the grid has them
            parts.update(field[:, r : r + 7, c : c + 10], 3, r, c, extent=(6, 9))
            cut.update(field[:, r : r + 6, c : c + 9], 3, r, c)
    assert parts.result() == pytest.approx(whole.result())
    # without the extra row and column the pairs between windows (all across an edge) are lost
    assert cut.result()["n_inside"] == whole.result()["n_inside"]
    assert cut.result()["n_across"] == whole.result()["n_across"] - 2 * (12 + 18)
    # a window that starts inside a cell places the edges by its offset
    offset = metrics.Seams()
    offset.update(field[:, :, 1:], 3, 0, 1)
    shifted = metrics.Seams()
    shifted.update(field[:, :, 1:], 3)
    assert offset.result()["n_across"] != shifted.result()["n_across"]


# ---------------------------------------------------------------- uncertainty


def test_spread_of_a_calibrated_std_covers_as_stated():
    rng = np.random.default_rng(1)
    std = rng.uniform(0.005, 0.05, 200_000)
    ref = rng.uniform(0.1, 0.4, std.size)
    pred = ref + std * rng.standard_normal(std.size)
    spread = metrics.Spread()
    half = std.size // 2
    spread.update(pred[:half], std[:half], ref[:half])
    spread.update(pred[half:], std[half:], ref[half:])
    out = spread.result()
    assert out["n"] == std.size
    assert out["coverage90"] == pytest.approx(0.90, abs=0.005)
    assert out["spread_error_r"] > 0.3
    for row in spread.coverage():
        assert row["observed"] == pytest.approx(row["nominal"], abs=0.01)
    bins = spread.reliability(min_count=1000)
    assert sum(b["n"] for b in bins) == std.size and all(b["n"] >= 1000 for b in bins)
    for b in bins:
        assert b["rmse"] == pytest.approx(b["rms_std"], rel=0.1)


def test_spread_of_a_too_small_std_undercovers():
    rng = np.random.default_rng(2)
    ref = rng.uniform(0.1, 0.4, 50_000)
    pred = ref + 0.03 * rng.standard_normal(ref.size)
    std = np.full(ref.size, 0.005)
    std[:10] = np.nan
    spread = metrics.Spread()
    spread.update(pred, std, ref)
    out = spread.result()
    assert out["n"] == ref.size - 10
    assert out["coverage90"] == pytest.approx(np.mean(np.abs(pred - ref)[10:] <= metrics.Z90 * 0.005))
    assert out["coverage90"] < 0.3
    assert not abs(out["spread_error_r"]) > 1e-6  # a constant std says nothing about the error (0 or NaN)
    assert out["mae"] == pytest.approx(np.mean(np.abs(pred - ref)[10:]))


def test_crps_of_a_normal_forecast_in_closed_form():
    # CRPS(N(0, 1), 0) = 2 phi(0) - 1 / sqrt(pi) = (sqrt(2) - 1) / sqrt(pi)
    assert metrics.crps_normal(np.array(0.0), np.array(1.0)) == pytest.approx((np.sqrt(2) - 1) / np.sqrt(np.pi))
    # it scales with the std and is even in the error; no spread: the absolute error
    assert metrics.crps_normal(np.array(-0.3), np.array(0.2)) == pytest.approx(
        0.2 * metrics.crps_normal(np.array(1.5), np.array(1.0)))
    assert metrics.crps_normal(np.array([0.25, -0.25]), np.array([0.0, 0.0])) == pytest.approx([0.25, 0.25])
    # the closed form against its definition, the integral of (F(x) - 1{x >= y})^2 over x, by quadrature
    from scipy.integrate import quad
    from scipy.stats import norm

    below, _ = quad(lambda x: norm.cdf(x, scale=0.2) ** 2, -np.inf, 0.3)
    above, _ = quad(lambda x: norm.sf(x, scale=0.2) ** 2, 0.3, np.inf)
    assert metrics.crps_normal(np.array(0.3), np.array(0.2)) == pytest.approx(below + above, rel=1e-7)


def test_interval_score_of_known_intervals():
    # inside: the width alone; outside: the width plus 2 / alpha times the distance
    assert metrics.interval_score(np.array(0.5), np.array(1.0)) == pytest.approx(2.0)
    assert metrics.interval_score(np.array(-2.0), np.array(1.0), alpha=0.1) == pytest.approx(2.0 + 20.0 * 1.0)
    assert metrics.interval_score(np.array(2.0), np.array(metrics.Z90)) == pytest.approx(
        2 * metrics.Z90 + 20 * (2.0 - metrics.Z90))


def test_spread_proper_scores_and_their_constant_reference():
    rng = np.random.default_rng(6)
    std = np.exp(rng.normal(-3.5, 0.7, 100_000))
    ref = rng.uniform(0.1, 0.4, std.size)
    err = std * rng.standard_normal(std.size)
    spread = metrics.Spread()
    spread.update(ref + err, std, ref)
    out = spread.result()
    assert out["crps"] == pytest.approx(np.mean(metrics.crps_normal(err, std)))
    assert out["interval_score_90"] == pytest.approx(np.mean(metrics.interval_score(err, metrics.Z90 * std)))
    # the constant reference covers as often as the std, and scores as that constant does on every pair
    width = metrics.Z90 * out["constant_std"]
    assert np.mean(np.abs(err) <= width) == pytest.approx(out["coverage90"], abs=2e-4)
    assert width == pytest.approx(np.quantile(np.abs(err), out["coverage90"]), rel=2e-3)
    assert out["crps_constant"] == pytest.approx(np.mean(metrics.crps_normal(err, np.full(err.size, width / metrics.Z90))),
                                                 rel=1e-3)
    assert out["interval_score_90_constant"] == pytest.approx(np.mean(metrics.interval_score(err, width)), rel=1e-3)
    # a std that knows where the error is large beats the constant: positive skills
    assert out["crps_skill"] == pytest.approx(1 - out["crps"] / out["crps_constant"])
    assert out["crps_skill"] > 0.05 and out["interval_skill"] > 0.2
    # a constant std is its own reference: skill 0 (to the histogram's precision)
    flat = metrics.Spread()
    flat.update(ref + err, np.full(std.size, 0.04), ref)
    flat_out = flat.result()
    assert flat_out["constant_std"] == pytest.approx(0.04, rel=2e-3)
    assert abs(flat_out["crps_skill"]) < 1e-3 and abs(flat_out["interval_skill"]) < 1e-3


def test_spreads_merge_exactly():
    rng = np.random.default_rng(7)
    std = rng.uniform(0.01, 0.05, 20_000)
    ref = rng.uniform(0.1, 0.4, std.size)
    pred = ref + std * rng.standard_normal(std.size)
    whole, first, second = metrics.Spread(), metrics.Spread(), metrics.Spread()
    whole.update(pred, std, ref)
    first.update(pred[:7000], std[:7000], ref[:7000])
    second.update(pred[7000:], std[7000:], ref[7000:])
    first.merge(second)
    merged, once = first.result(), whole.result()
    assert set(merged) == set(once)
    for key, value in once.items():
        assert merged[key] == pytest.approx(value, rel=1e-9), key
    for a, b in zip(first.reliability(), whole.reliability(), strict=True):
        assert a == pytest.approx(b, rel=1e-9)


# ---------------------------------------------------------------- bootstrap


def test_metrics_from_sums_match_the_array_metrics():
    rng = np.random.default_rng(3)
    ref = rng.random(500)
    pred = ref + 0.1 * rng.standard_normal(500) + 0.02
    sums = metrics.ClusterSums()
    for i in range(5):
        sums.add(i % 2, i, pred[i * 100 : (i + 1) * 100], ref[i * 100 : (i + 1) * 100])
    _, _, table = sums.table()
    total = metrics.metrics_from_sums(table.sum(axis=(0, 1)))
    for name in metrics.CI_METRICS:
        assert float(total[name]) == pytest.approx(getattr(metrics, name)(pred, ref), rel=1e-9)


def test_bootstrap_interval_holds_the_estimate_and_shrinks_with_data():
    rng = np.random.default_rng(4)

    def intervals(cells):
        sums = metrics.ClusterSums()
        for cell in range(cells):
            offset = 0.01 * rng.standard_normal()  # a bias per cell: cells are the independent units
            for block in range(6):
                ref = rng.uniform(0.1, 0.4, 50)
                sums.add(cell, block, ref + offset + 0.02 * rng.standard_normal(50), ref)
        point = metrics.metrics_from_sums(sums.table()[2].sum(axis=(0, 1)))
        return point, metrics.bootstrap_ci(sums, replicates=400, seed=0)

    (p_few, few), (p_many, many) = intervals(4), intervals(64)
    for point, ci in ((p_few, few), (p_many, many)):
        for name in metrics.CI_METRICS:
            assert ci[f"{name}_lo"] < point[name] < ci[f"{name}_hi"]
    assert many["bias_hi"] - many["bias_lo"] < few["bias_hi"] - few["bias_lo"]
    again = metrics.ClusterSums()
    assert np.isnan(metrics.bootstrap_ci(again)["r_lo"])


def test_bootstrap_is_seeded():
    sums = metrics.ClusterSums()
    rng = np.random.default_rng(5)
    for cell in range(3):
        for block in range(3):
            ref = rng.random(20)
            sums.add(cell, block, ref + 0.1 * rng.standard_normal(20), ref)
    assert metrics.bootstrap_ci(sums, seed=7) == metrics.bootstrap_ci(sums, seed=7)
    assert metrics.bootstrap_ci(sums, seed=7) != metrics.bootstrap_ci(sums, seed=8)


def test_cluster_sums_add_many_equals_add():
    rng = np.random.default_rng(6)
    pred, ref = rng.random((4, 3, 6)), rng.random((4, 3, 6))
    pred[0, 0, 0] = np.nan
    clusters = np.array([0, 0, 0, 1, 1, 1])[None, None, :]  # by column
    blocks = np.array([0, 0, 1, 1])[:, None, None]  # by day
    many, one = metrics.ClusterSums(), metrics.ClusterSums()
    many.add_many(clusters, blocks, pred, ref)
    for c in (0, 1):
        for b in (0, 1):
            sel = (slice(2 * b, 2 * b + 2), slice(None), slice(3 * c, 3 * c + 3))
            one.add(c, b, pred[sel], ref[sel])
    assert many.keys() == one.keys()
    np.testing.assert_allclose(many.table()[2], one.table()[2])
    assert many.table()[2][..., 0].sum() == 4 * 3 * 6 - 1
    # labels far apart and negative (numbered as seen), and a pair of labels with no finite value (no key)
    far, one = metrics.ClusterSums(), metrics.ClusterSums()
    labels = np.array([-7, -7, -7, 10**9, 10**9, 10**9])[None, None, :]
    pred[2:, :, 3:] = np.nan
    far.add_many(labels, blocks, pred, ref)
    for c, cluster in enumerate((-7, 10**9)):
        for b in (0, 1):
            sel = (slice(2 * b, 2 * b + 2), slice(None), slice(3 * c, 3 * c + 3))
            one.add(cluster, b, pred[sel], ref[sel])
    assert far.keys() == one.keys() == ({-7, 10**9}, {0, 1})
    assert set(far.sums) == {(-7, 0), (-7, 1), (10**9, 0)}
    for key, row in one.sums.items():
        np.testing.assert_allclose(far.sums[key], row, rtol=1e-12)

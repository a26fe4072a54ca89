"""Job resources as functions of the job's size (smdown.resources)."""

import math

import pytest

from smdown import resources as res
from smdown.grid import EASE2_9KM_RES

SMALL = res.Region(2, 2, EASE2_9KM_RES, 16)
LARGE = res.Region(100, 100, EASE2_9KM_RES, 300)


@pytest.mark.parametrize("rule", sorted({p.rule for p in res.CALIBRATION}))
def test_written_coefficients_are_the_fit_of_the_calibration(rule):
    fitted = res.fit([p for p in res.CALIBRATION if p.rule == rule])
    written = res.MODELS[rule]
    for name in ("start_s", "s_per_unit", "base_mb", "mb_per_unit"):
        assert getattr(written, name) == pytest.approx(getattr(fitted, name), rel=2e-3, abs=1e-9), name


@pytest.mark.parametrize("point", res.CALIBRATION, ids=lambda p: f"{p.rule}-{p.work:g}")
def test_requests_cover_every_measurement(point):
    asked = res.request(point.rule, point.work, point.held)
    assert asked.mem_mb >= point.rss_mb * res.MEM_MARGIN
    assert asked.runtime * 60 >= point.cpu_s * res.RUNTIME_MARGIN


def test_memory_grows_on_retry():
    first, second = res.request("predict", 1e9, 3.6e6, 1), res.request("predict", 1e9, 3.6e6, 2)
    assert second.mem_mb == 2 * first.mem_mb and second.runtime == 2 * first.runtime


def test_predict_time_follows_the_region_and_memory_the_block():
    small = res.request("predict", SMALL.pixel_days(1000), SMALL.cell_pixel_days(1000))
    large = res.request("predict", LARGE.pixel_days(30), LARGE.cell_pixel_days(30))
    assert small == res.Request(res.MIN_MEM_MB + 300, res.MIN_RUNTIME)  # 862.6 MB x 1.5, 10 min
    assert LARGE.pixel_days(30) == 100 * 100 * 300**2 * 300
    # 2.7e11 pixel-days at ~250 000 per CPU-s, x 3: beyond a 2-day partition (one job per layer, no tiles yet)
    assert large.runtime > res.GRANT_RUNTIME and "runtime" in large.exceeds()[0]
    # one block of 300 x 300 pixels x 300 days: memory a node grants, whatever the region
    assert 10_000 < large.mem_mb < 30_000 and not [e for e in large.exceeds() if "mem" in e]
    assert res.request("predict", LARGE.pixel_days(30) * 4, LARGE.cell_pixel_days(30)).mem_mb == large.mem_mb


def test_a_tile_of_two_by_two_cells_is_a_job_a_partition_grants():
    """The default tiles (tiles.cells 2) cut the same region's predict into jobs of 4 cells x 300 days."""
    tile = res.request("predict", LARGE.cell_pixel_days(30, 2), LARGE.cell_pixel_days(30))
    assert not tile.exceeds() and tile.runtime < 120
    assert not res.request("merge_tiles", LARGE.pixel_days(30), LARGE.budget_block(30, 32e6)).exceeds()


def test_budget_block_is_whole_cells_within_the_budget():
    assert SMALL.budget_block(1000, 2**23) == SMALL.pixel_days(1000)  # the whole (tiny) region
    assert LARGE.budget_block(30, 2**23) == 300 * 300 * 300  # one cell is more than the budget
    assert LARGE.budget_block(1000, 2**23) == 9 * 9 * 300 * int((2**23 / (81 * 300)) ** 0.5) ** 2
    assert LARGE.budget_block(30, 2**23, static=True) == 300 * 300 * 9 * 9  # 9 x 9 cells of the DEM


def test_summarise_dry_run():
    text = """
rule resample:
    wildcards: scale=30, var=ndvi
    resources: tmpdir=/tmp, runtime=3789, mem_mb=2400, mem=2.4 GB, mem_mib=2289

rule resample:
    resources: tmpdir=/tmp, runtime=10, mem_mb=1000, mem=1 GB, mem_mib=954

localrule all:
    resources: tmpdir=/tmp
"""
    rows = {r["rule"]: r for r in res.summarise_dry_run(text)}
    assert rows["resample"] == {"rule": "resample", "jobs": 2, "mem_mb": 2400, "runtime": 3789,
                                "exceeds": "runtime 3789 min > 2880"}
    assert rows["all"]["jobs"] == 1


def test_projection_today_is_bound_by_one_predict_job_per_layer():
    today = res.stages(58e6, 300)
    predict = next(s for s in today if s.name == "predict")  # the surface's; the root zone's waits for it
    assert [(s.name, s.jobs) for s in today if s.name.startswith("predict")] == [("predict", 1), ("predict_rootzone", 1)]
    assert predict.cpu_s > 3 * 3600  # 17.4 G pixel-days at ~1.5 M per CPU-s (forest joined)
    ten, hundred = res.project(today, 10), res.project(today, 100)
    assert ten["wall_h"] == hundred["wall_h"] > 2 * predict.cpu_s / 3600  # more nodes do not help
    tiled = res.stages(58e6, 300, tiles=40)  # tiles of 4 x 4 cells: predict, predict_rf, cubic_baseline per tile
    assert res.project(tiled, 10)["wall_h"] < ten["wall_h"] / 2
    assert max(s.cpu_s for s in tiled if s.name in ("predict", "predict_rootzone", "predict_rf", "cubic_baseline")) < 3600

    def cpu_h(plan, refine):  # tiles split the work, but each refine tile also reads the cells around it
        return sum(s.jobs * s.cpu_s for s in plan if (s.name == "refine") == refine) / 3600

    assert cpu_h(tiled, refine=False) == pytest.approx(cpu_h(today, refine=False), rel=0.05)
    assert cpu_h(tiled, refine=True) > 2 * cpu_h(today, refine=True)


@pytest.mark.parametrize("point", res.CHECKS, ids=lambda p: p.source.rsplit(", ", 1)[-1])
def test_requests_cover_the_checks_not_fitted(point):
    asked = res.request(point.rule, point.work, point.held)
    assert asked.mem_mb >= point.rss_mb and res.MODELS[point.rule].rss_mb(point.held) >= 0.9 * point.rss_mb
    assert math.isnan(point.cpu_s) or res.MODELS[point.rule].cpu_s(point.work) >= point.cpu_s


def test_bytes_lines_are_the_measured_file_sizes_and_the_projection_uses_them(monkeypatch):
    """Bytes written per unit of work: the largest measured ratio of each step; each stage writes its line's bytes,
    the tiles are on disk with their merged maps during the merge and removed after it."""
    for rule, per_unit in res.BYTES.items():
        assert per_unit == max(w.nbytes / w.work for w in res.WRITTEN if w.rule == rule) > 0
    assert 15 < res.BYTES["predict"] < 18  # six float32 maps (ZSTD) at ~2.7 bytes a pixel-day each
    pixels, days, tiles = 58e6, 300, 161
    plan = res.stages(pixels, days, tiles=tiles)
    predict = next(s for s in plan if s.name == "predict")
    assert predict.written == pytest.approx(res.BYTES["predict"] * pixels * days / tiles) and predict.temporary
    p = res.project(plan, 10)
    assert p["written_gb"] == pytest.approx(sum(s.jobs * s.written for s in plan) / 1e9)
    steps = {row["step"]: row for row in p["steps"]}
    merge = steps["merge_tiles"]
    maps = 2 * (res.BYTES["predict"] + res.BYTES["cubic_baseline"]) * pixels * days / 1e9  # both layers' maps
    assert merge["written_gb"] == pytest.approx(maps)
    assert p["peak_gb"] == pytest.approx(merge["disk_peak_gb"])  # the tiles and their merged maps together
    assert steps["fit_refinement"]["disk_peak_gb"] == pytest.approx(merge["disk_peak_gb"] - maps)  # tiles removed
    monkeypatch.setitem(res.BYTES, "predict", 2 * res.BYTES["predict"])  # the line is what the projection reads
    doubled = res.project(res.stages(pixels, days, tiles=tiles), 10)
    assert doubled["written_gb"] == pytest.approx(p["written_gb"] + 2 * 2 * res.BYTES["predict"] / 2 * pixels * days / 1e9)


def test_samples_read_the_cells_their_bags_fall_in():
    """A bag is one cell-day, so the samples step reads at most `bags` cells' series, the whole region where smaller
    (or where the target is read whole)."""
    demo, valley = res.Region(5, 4, 9000.0, 40), res.Region(68, 44, 9000.0, 300)
    assert demo.visited_pixel_days(30, 375) == demo.pixel_days(30)
    assert valley.visited_pixel_days(30, 375) == 375 * 300 * 300 * 300 < valley.pixel_days(30)
    assert valley.visited_pixel_days(30, None) == valley.pixel_days(30)
    plan = {s.name: s for s in res.stages(8.7e9, 365)}
    assert plan["samples 30 m"].cpu_s == pytest.approx(res.MODELS["samples"].cpu_s(375 * 90000 * 365))
    assert plan["samples 100 m"].cpu_s < plan["samples 30 m"].cpu_s


def test_a_product_run_writes_the_product_alone_and_merges_in_threads():
    """outputs.maps auto on a region of your own: predict writes the ensemble and its spread (their measured bytes),
    two merges a layer, no cubic baseline; every merge's wall time is its CPU time over the measured speed-up."""
    assert 5 < res.BYTES["predict_product"] < res.BYTES["predict"] / 2
    pixels, days = 58e6, 300
    full, product = res.stages(pixels, days, tiles=161), res.stages(pixels, days, tiles=161, product=True)
    names = {s.name for s in product}
    assert "cubic_baseline" not in names and "cubic_baseline" in {s.name for s in full}
    predict = next(s for s in product if s.name == "predict")
    assert predict.written == pytest.approx(res.BYTES["predict_product"] * pixels * days / 161)
    assert next(s for s in product if s.name == "merge_tiles").jobs == 2 * 2
    steps = {row["step"]: row for row in res.project(product, 10)["steps"]}
    assert steps["merge_tiles"]["written_gb"] == pytest.approx(2 * res.BYTES["predict_product"] * pixels * days / 1e9)
    assert res.project(product, 10)["written_gb"] < res.project(full, 10)["written_gb"]
    merge = next(s for s in full if s.name == "merge_tiles")
    assert merge.threads == res.MERGE_THREADS and merge.wall_s == pytest.approx(merge.cpu_s / res.MERGE_SPEEDUP)


def test_maps_as_vrts_merge_nothing_keep_every_tile_and_take_the_merges_off_the_wall():
    """outputs.mosaic vrt: no merge stage, every tile kept (written = kept = the peak), and the wall is the COG run's
    less its three rounds of merges; the finest scale's daily variables are merged in neither."""
    pixels, days, tiles = 58e6, 300, 161
    cog, vrt = res.stages(pixels, days, tiles=tiles), res.stages(pixels, days, tiles=tiles, mosaic="vrt")
    assert not any(s.name.startswith("merge") for s in vrt) and not any(s.temporary for s in vrt)
    merges = [s for s in cog if s.name.startswith("merge")]
    assert [s.name for s in merges] == ["merge_tiles", "merge_refined", "merge_uncertainty"]
    on_cog, on_vrt = res.project(cog, 100), res.project(vrt, 100)
    assert on_vrt["written_gb"] == pytest.approx(on_vrt["disk_gb"]) == pytest.approx(on_vrt["peak_gb"])
    assert on_vrt["disk_gb"] == pytest.approx(on_cog["disk_gb"])  # the same maps kept, as tiles or merged
    assert on_vrt["wall_h"] == pytest.approx(on_cog["wall_h"] - sum(s.wall_s for s in merges) / 3600)
    assert on_vrt["wall_h"] < 1.0 < on_cog["wall_h"]


def test_a_refine_tile_reads_the_cells_around_it():
    """refine reads its tile and the predictors' cell means of REFINE_HALO cells around it (the refinement's HALO),
    cut to the region."""
    from smdown.mapping.refine import HALO

    assert res.REFINE_HALO == HALO
    region = res.Region(20, 20, 9000.0, 10)
    cell = 300 * 300 * 10
    assert region.halo_pixel_days(30, 8, 8, 2, 2, HALO) == (2 + 2 * HALO) ** 2 * cell
    assert region.halo_pixel_days(30, 0, 0, 2, 2, HALO) == (2 + HALO) ** 2 * cell  # the region's corner
    assert region.halo_pixel_days(30, 0, 0, 20, 20, HALO) == region.pixel_days(30)


def test_the_root_zones_predict_waits_for_the_surfaces_where_it_borrows_its_detail():
    """ensemble.rootzone_from_surface > 0 (the default): the root zone's predict of a tile reads the surface's, so it is a step of
    its own after the surface's; the jobs and the work are the same, and one wave of tiles takes two predict jobs of
    wall time instead of one."""
    pixels, days, tiles = 58e6, 300, 161
    apart, after = res.stages(pixels, days, tiles=tiles, detail=False), res.stages(pixels, days, tiles=tiles)
    assert {s.name: s.jobs for s in after if s.name.startswith("predict")} == {"predict": tiles,
                                                                              "predict_rootzone": tiles}
    on_apart, on_after = res.project(apart, 100), res.project(after, 100)
    assert on_after["jobs"] == on_apart["jobs"] and on_after["cpu_core_h"] == pytest.approx(on_apart["cpu_core_h"])
    predict = next(s for s in after if s.name == "predict")
    assert on_after["wall_h"] == pytest.approx(on_apart["wall_h"] + predict.wall_s / 3600)
    steps = [row["step"] for row in on_after["steps"]]
    assert steps.index("predict_rootzone") == steps.index("predict/predict_rf/cubic_baseline/sensitivity") + 1

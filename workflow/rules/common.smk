import functools
import os
import sys
from pathlib import Path

# every job imports the library of this checkout (no install needed, conda envs included)
sys.path.insert(0, str(Path(workflow.basedir)))
os.environ.update(
    PYTHONPATH=os.pathsep.join(
        [str(Path(workflow.basedir))] + [p for p in [os.environ.get("PYTHONPATH")] if p]
    )
)

# GDAL's block cache takes up to 5 % of the machine's memory by default (12.8 GB on a 256 GB node), whatever
# a job asked for: capped where unset, so a job's memory follows its block (smdown/resources.py, CHECKS)
os.environ.setdefault("GDAL_CACHEMAX", "256")

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger

from smdown import chunks as smchunks
from smdown import config as smconfig
from smdown import contract as smcontract
from smdown import grid as smgrid
from smdown import io as smio
from smdown import resources as smres
from smdown.preparing import terrain as smterrain
from smdown.acquire.region import coarse_grid, make_region
from smdown.grid import EASE2_9KM_RES
from smdown.preparing.features import spec_from_config
from smdown.io import InputError
from smdown.preparing.resample import BLOCK_PIXEL_DAYS, terrain_names
from smdown.preparing import resample as smresample
from smdown.preparing.demo import make_frame
from smdown.publishing.publish_steps import written_maps

try:
    _validated = smconfig.validate(config)
except smconfig.ConfigError as err:
    raise WorkflowError(f"invalid configuration: {err}") from None
config.clear()
config.update(_validated)

RUN = config["run"]
R = f"results/{RUN}"
SOURCE = smconfig.source_of(config)
RESOURCES = smconfig.resource_dir(config)
INPUTS = smconfig.inputs_of(config)
LAYERS = INPUTS.layers
MEMBERS = config["models"]["members"]
SCALES = [smconfig.scale_name(s) for s in config["scales"]]
FINE = smconfig.scale_name(min(config["scales"]))
TRAIN_SCALES = (
    [smconfig.scale_name(s) for s in config["training_scales"]]
    if config["samples"]["target"] != "coarse"
    else ["coarse"]
)
TERRAIN = (
    terrain_names(config["derived"]["terrain"]) if "dem" in INPUTS.predictors else []
)
STATIC = INPUTS.static + TERRAIN
PREDICTOR_RASTERS = INPUTS.dynamic + STATIC
LAYER_VARIANTS = INPUTS.variants()
VARIABLES = (
    PREDICTOR_RASTERS + list(LAYER_VARIANTS) + [f"coarse_{layer}" for layer in LAYERS]
)


# The settings each job reads, passed as `params:` slices, so a changed setting reruns exactly what it touches.
FEATURES = spec_from_config(config, INPUTS.dynamic, STATIC).to_dict()
MODEL_INPUTS = smconfig.model_inputs(config, FEATURES)
SPLIT_SETTINGS = smconfig.split_settings(config)
SAMPLE_SETTINGS = smconfig.sample_settings(config)
HYPER_PARAMETERS = smconfig.hyper_parameters(config)
TUNE_SETTINGS = smconfig.tune_settings(config)
# A run applying a trained run (config models.from) reads that run's members, forest, weights, refinement,
# calibration and area-of-applicability reference from MODELS_RUN (checked below, before any job runs) and
# schedules no samples, tuning, training or weighting; a run of its own trains them under R (MODELS_RUN is R).
APPLIED = config["models"]["from"]
MODELS_RUN = str(APPLIED).rstrip("/") if APPLIED else R
# Time chunks (config chunks, smdown.chunks): a run applying trained models maps its period one chunk at a time, the
# daily work of a chunk under CR (results/<run>/chunks/{chunk}; R itself where the period is one chunk), each written
# map of the whole period a VRT over its chunks (rule record); CHUNKS is set once the coarse dates are known, below.
CHUNKED = config["chunks"]["by"] != "none"
CR = f"{R}/chunks/{{chunk}}" if CHUNKED else R
# How a map of the region is put together from its tiles (config outputs.mosaic): cog, merged into one
# Cloud-Optimized GeoTIFF (rule merge_tiles), the tiles removed; vrt, a VRT over the tiles, which are kept (rule
# mosaic): nothing is written twice, and no merge waits between the tiled steps.
MOSAIC = config["outputs"]["mosaic"]
REGION_SUFFIX = ".vrt" if MOSAIC == "vrt" else ".tif"
MAP_SUFFIX = ".vrt" if CHUNKED else REGION_SUFFIX


def map_file(layer, name):
    """A map of the run's whole period: its GeoTIFF, or the VRT over its tiles (outputs.mosaic vrt) or over its time
    chunks (rule record)."""
    return f"{R}/downscaled/{layer}/{name}{MAP_SUFFIX}"


def region_map(folder, name, layer="{layer}"):
    """A map of the region for one period (the run's, or a time chunk's under `folder`), as the tiled steps after
    predict read it: merged (outputs.mosaic cog) or a VRT over its tiles (vrt)."""
    return f"{folder}/downscaled/{layer}/{name}{REGION_SUFFIX}"


def fine_daily(folder, var):
    """A daily variable on the finest grid: a VRT over its tiles (rule mosaic_scale), which are kept."""
    return f"{folder}/scales/{FINE}/{var}.vrt"


# the area of applicability (workflow/rules/applicability.smk)
AOA = config["aoa"]["enabled"]
AOA_SETTINGS = {key: value for key, value in config["aoa"].items() if key != "enabled"}


if SOURCE == "local":
    try:
        smconfig.check_inputs(INPUTS)
    except InputError as err:
        raise WorkflowError(f"bad input: {err}") from None

if APPLIED:
    try:
        APPLIED_REFINES = smconfig.check_applied(
            MODELS_RUN,
            LAYERS,
            MEMBERS,
            MODEL_INPUTS,
            FINE,
            INPUTS.predictors if SOURCE == "local" else None,
            aoa=AOA,
        )
    except smconfig.ConfigError as err:
        raise WorkflowError(f"invalid configuration: {err}") from None


wildcard_constraints:
    layer="|".join(LAYERS),
    model="|".join(MEMBERS),
    scale="|".join(["coarse"] + SCALES),
    var="|".join(VARIABLES),


def variable_source(wildcards):
    """The contract file (or derived terrain raster) a variable is resampled from: for a time chunk's daily work, a
    coarse layer's days of the chunk's window (rule chunk_coarse), and a dynamic predictor's file read by digest of
    the days the window is filled from (source_digest), not by its time stamp."""
    var = wildcards.var
    if var.startswith("coarse_"):
        if in_chunk(wildcards):
            return f"{chunk_folder(wildcards)}/{var}.tif"
        return INPUTS.coarse[var.removeprefix("coarse_")]
    if in_chunk(wildcards):
        return ancient(raw_source(var))
    return raw_source(var)


def raw_source(var):
    """The contract file (or derived terrain raster) of a predictor."""
    if var in TERRAIN:
        return f"{R}/derived/{var}.tif"
    if var in LAYER_VARIANTS:
        layer, name = LAYER_VARIANTS[var]
        return INPUTS.layer_predictors[layer][name]
    return INPUTS.predictors[var]


def is_static(wildcards):
    name = LAYER_VARIANTS.get(wildcards.var, (None, wildcards.var))[1]
    return name in STATIC


def scale_of(wildcards):
    return wildcards.scale


def is_coarse_variable(wildcards):
    """The coarse soil moisture itself: resampled, never filled in time (an outage stays NaN)."""
    return wildcards.var.startswith("coarse_")


def scale_rasters(scale, layer, daily_folder=R):
    """A layer's predictor rasters at a scale (its own variant where it has one, e.g. sand_rootzone); the daily ones
    under `daily_folder` (a time chunk's)."""
    own = INPUTS.layer_predictors.get(layer, {})
    variables = {
        n: smcontract.layer_variable(n, layer) if n in own else n
        for n in PREDICTOR_RASTERS
    }
    return {
        name: (
            fine_daily(daily_folder, var)
            if var in DAILY_VARIABLES and str(scale) == str(FINE)
            else f"{R}/scales/{scale}/{var}.tif"
        )
        for name, var in variables.items()
    }


def sample_rasters(wildcards):
    return scale_rasters(wildcards.scale, wildcards.layer)


def fine_rasters(wildcards):
    return scale_rasters(FINE, wildcards.layer, chunk_folder(wildcards))


def sample_target(wildcards):
    """aggregate: the coarse input itself; cubic / coarse: the coarse field resampled to the scale; truth: the
    layer's fine truth (the skill panel's ceiling; averaged onto the scale by the samples step).
    """
    if config["samples"]["target"] == "aggregate":
        return INPUTS.coarse[wildcards.layer]
    if config["samples"]["target"] == "truth":
        return INPUTS.truth[wildcards.layer]
    return f"{R}/scales/{wildcards.scale}/coarse_{wildcards.layer}.tif"


def layer_samples(wildcards):
    return [f"{R}/samples/{wildcards.layer}/{scale}.npz" for scale in TRAIN_SCALES]


def deep_models(wildcards):
    return [f"{MODELS_RUN}/models/{wildcards.layer}/{m}.keras" for m in MEMBERS]


def ensemble_models(wildcards):
    """The ensemble's members: the deep ones, and the random forest where it joins (ensemble.forest)."""
    if not FOREST_JOINS:
        return deep_models(wildcards)
    return deep_models(wildcards) + [f"{MODELS_RUN}/models/{wildcards.layer}/rf.joblib"]


def layer_models(wildcards):
    return deep_models(wildcards) + [f"{MODELS_RUN}/models/{wildcards.layer}/rf.joblib"]


def tuned_parameters(wildcards):
    """The member's tuned hyper-parameters (rule tune) when tuning is on; none otherwise."""
    if not config["tune"]["enabled"]:
        return []
    return f"{R}/models/{wildcards.layer}/{wildcards.model}_tuned.json"


def layer_tuned(wildcards):
    """The deep members' tuning results (with their self-similarity check) when tuning is on; none otherwise."""
    if not config["tune"]["enabled"]:
        return []
    return [f"{R}/models/{wildcards.layer}/{m}_tuned.json" for m in MEMBERS]


# The maps of a layer, each written per tile and merged by merge_tiles. They are predict's (the deep members, the
# ensemble and its spread, and the random forest's where it joins the ensemble: ensemble.forest), the random
# forest's otherwise (rule predict_rf, so the forest is predicted once either way) and the cubic baselines (rule
# cubic_baseline), and the uncertainty (written per tile once the ensemble is merged, since its local detail reads
# across the tiles' edges). Where the stations refine the ensemble (config refine, with stations), predict's
# ensemble is ensemble_raw and the ensemble is the refined map (rules fit_refinement and refine).
FOREST_JOINS = config["ensemble"]["forest"]
REFINES = config["refine"]["enabled"] and bool(INPUTS.stations)
# a run applying a trained run: that run's refinement, where it has one, refines this one's ensemble (no stations)
if APPLIED:
    REFINES = config["refine"]["enabled"] and all(APPLIED_REFINES.values())
ENSEMBLE_MAPS = (
    MEMBERS + (["rf"] if FOREST_JOINS else []) + ["ensemble", "ensemble_std"]
)


def predicted(name):
    """The file name of one of predict's maps: the ensemble is ensemble_raw where the stations refine it."""
    return "ensemble_raw" if REFINES and name == "ensemble" else name


# the share of the root zone ensemble's within-cell detail taken from the surface ensemble's (smdown.mapping.detail),
# where the run maps both layers
ROOTZONE_FROM_SURFACE = (
    config["ensemble"]["rootzone_from_surface"]
    if {"surface", "rootzone"} <= set(LAYERS)
    else 0.0
)


def detail_share(wildcards):
    """The share of the layer's within-cell detail its ensemble borrows (the root zone's, from the surface)."""
    return ROOTZONE_FROM_SURFACE if wildcards.layer == "rootzone" else 0.0


def detail_donor(wildcards):
    """The surface ensemble's map of the tile (before any refinement), whose detail the root zone's borrows."""
    if not detail_share(wildcards):
        return []
    return f"{chunk_folder(wildcards)}/tiles/surface/{wildcards.tile}/{predicted('ensemble')}.tif"


def held_out_of(wildcards):
    """The layer's held-out shifts at the stations (fit_refinement's refinement_held_out.csv) where the stations
    refine the ensemble (the uncertainty is calibrated on the errors of the refinement fitted without each
    station), else nothing."""
    return f"{R}/ensemble/{wildcards.layer}/refinement_held_out.csv" if REFINES else []


TILED_MAPS = (
    [predicted(name) for name in ENSEMBLE_MAPS]
    + (["ensemble"] if REFINES else [])
    + ([] if FOREST_JOINS else ["rf"])
    + ["cubic", "cubic_corrected", "uncertainty"]
    + (["aoa"] if AOA else [])
)
# The maps the run writes (config outputs.maps: by default every map for the demo, the product for a region of your
# own), merged by merge_tiles into results/<run>/downscaled/; the maps other rules read that are not among them (the
# spread and the ensemble before refining, read by the uncertainty and the refinement; the ensemble and uncertainty,
# read by the map figures) are merged by merge_needed as temporary files, removed once read. The outputs settings
# reach the writing rules only (merge_tiles, cube, catalog as params, the evaluation through scored_maps), so a
# change of them reruns no prediction or training.
OUTPUTS = config["outputs"]
try:
    WRITTEN_MAPS = written_maps(OUTPUTS["maps"], TILED_MAPS, MEMBERS, SOURCE != "demo")
except ValueError as err:
    raise WorkflowError(f"invalid configuration: {err}") from None
# A map that other rules read and the run does not write is merged as a temporary file (rule merge_needed). Where an
# earlier run of the same name wrote it for every layer, it stays a written map: narrowing outputs.maps then stops
# writing maps, never deletes one, and predicts nothing again (its tiles are gone).
_NEEDED = [
    name
    for name in TILED_MAPS
    if name in ("ensemble", "ensemble_std", "uncertainty", "ensemble_raw")
    and name not in WRITTEN_MAPS
]
WRITTEN_MAPS += [
    name
    for name in _NEEDED
    if all(Path(map_file(layer, name)).exists() for layer in LAYERS)
]
NEEDED_MAPS = [name for name in _NEEDED if name not in WRITTEN_MAPS]
# predict's maps: the ensemble and its spread (other rules read them) and the members' the run writes; a member's map
# that nothing reads is not written (the member is predicted all the same, since the ensemble needs it)
PREDICT_MAPS = [
    name
    for name in ENSEMBLE_MAPS
    if name in ("ensemble", "ensemble_std") or name in WRITTEN_MAPS
]


def written_map_files(wildcards):
    """Every written map of the run (rule catalog), layer by layer."""
    return [map_file(layer, m) for layer in LAYERS for m in WRITTEN_MAPS]


def layer_written_maps(wildcards):
    """The layer's written maps (rule cube)."""
    return [map_file(wildcards.layer, m) for m in WRITTEN_MAPS]


def written_cubes(wildcards):
    """Each layer's cube where outputs.cube (rule catalog), else nothing."""
    return [f"{R}/cube/{layer}.nc" for layer in LAYERS] if OUTPUTS["cube"] else []


def scored_maps(wildcards):
    """The layer's maps evaluate_tile scores: those of EVALUATED_MAPS the run writes (a map not written is not
    scored)."""
    return [map_file(wildcards.layer, m) for m in EVALUATED_MAPS if m in WRITTEN_MAPS]


def scored_run_maps(wildcards):
    """Every layer's scored maps and spreads (rule evaluate), those the run writes."""
    scored = EVALUATED_MAPS + ["ensemble_std", "uncertainty"]
    return [map_file(layer, m) for layer in LAYERS for m in scored if m in WRITTEN_MAPS]


def cube_mem_mb(wildcards, attempt):
    """The cube job's memory: a slab of 16 days x 128 rows x the region's columns (float64 while encoded) and
    HDF5's chunk cache, whatever the region's length; doubled on the second try."""
    fine = float(FINE)
    slab_mb = 16 * 128 * REGION.cols * REGION.factor(fine) * 8 * 3 / 1e6
    return int(1000 + slab_mb) * attempt


def cube_runtime(wildcards, attempt):
    """The cube job's minutes: a minute per 1e8 pixel-days written (the demo's 72 M of one map take 18 s on one
    core of a laptop), doubled on the second try."""
    work = REGION.pixel_days(float(FINE)) * len(WRITTEN_MAPS)
    return int(10 + work / 1e8) * attempt


def publishing_outputs():
    """The cubes and the catalogue the outputs settings ask for."""
    outputs = [f"{R}/cube/{layer}.nc" for layer in LAYERS] if OUTPUTS["cube"] else []
    return outputs + ([f"{R}/stac"] if OUTPUTS["catalog"] else [])


# the refinement's predictors this run has (a default one it lacks, e.g. ndwi, is left out with a warning)
REFINE_SETTINGS = {
    **config["refine"],
    "predictors": [p for p in config["refine"]["predictors"] if p in PREDICTOR_RASTERS],
}
if REFINES:
    _lacking = [p for p in config["refine"]["predictors"] if p not in PREDICTOR_RASTERS]
    if not REFINE_SETTINGS["predictors"]:
        raise WorkflowError(
            f"invalid configuration: none of refine.predictors {_lacking} is a predictor of this run "
            f"(choose among {PREDICTOR_RASTERS}, or refine: {{enabled: false}})"
        )
    if _lacking:
        logger.warning(
            f"refine.predictors {_lacking} are not predictors of this run: left out"
        )


def layer_weighting(wildcards):
    """The layer's member weighting (ensemble.weighting: one scheme for both layers, or one per layer)."""
    weighting = config["ensemble"]["weighting"]
    return weighting if isinstance(weighting, str) else weighting[wildcards.layer]


def layer_seed(wildcards):
    """The run's seed, offset per layer so the layers draw and train independently."""
    return config["seed"] + LAYERS.index(wildcards.layer) * 1000


def all_outputs():
    outputs = []
    for layer in LAYERS:
        outputs += [map_file(layer, name) for name in WRITTEN_MAPS]
        if not APPLIED:
            outputs.append(f"{R}/ensemble/{layer}/weights.csv")
    outputs += publishing_outputs()
    # evaluation, figures and sensitivity (rules in evaluate.smk and sensitivity.smk, included before rule all)
    outputs += list(rules.evaluate.output) + list(rules.metric_figure.output)
    outputs += list(rules.reliability_figure.output)
    figures = [rules.maps.output[0], rules.training_figure.output[0]]
    if INPUTS.stations:
        figures.append(rules.station_figure.output[0])
    outputs += expand(figures, layer=LAYERS)
    outputs += expand(rules.scatter.output[0], layer=LAYERS, reference=REFERENCES)
    if not APPLIED:  # the trained run's sensitivity holds for a run applying it
        outputs += expand(list(rules.sensitivity.output), layer=LAYERS)
        outputs += expand(rules.sensitivity_figure.output[0], layer=LAYERS)
    outputs += applicability_outputs()
    return outputs


def layer_truth(wildcards):
    """The layer's 30 m truth, where the run has one."""
    return [INPUTS.truth[wildcards.layer]] if wildcards.layer in INPUTS.truth else []


def coarse_input(wildcards):
    """The layer's coarse input: a time chunk's job reads the days of its window (rule chunk_coarse)."""
    if in_chunk(wildcards):
        return f"{chunk_folder(wildcards)}/coarse_{wildcards.layer}.tif"
    return INPUTS.coarse[wildcards.layer]


# Resources that follow the work (smdown.resources): each heavy rule's mem_mb and runtime are functions of its
# job's size, pixel-days of the run's region (from the config or the inputs' headers) or training examples.
def run_region():
    """The run's region (coarse cells, cell size, output days), known before any job runs."""
    if SOURCE == "demo":
        demo = config["demo"]
        return smres.Region(
            demo["coarse_rows"], demo["coarse_cols"], EASE2_9KM_RES, demo["days"]
        )
    if SOURCE == "earthdata":
        acquire = config["acquire"]
        region = make_region(acquire["bbox"], acquire["start"], acquire["end"])
        grid = coarse_grid(region)
        return smres.Region(grid.height, grid.width, grid.res, len(region.days))
    path = INPUTS.coarse[LAYERS[0]]
    grid = smio.read_grid(path)
    return smres.Region(grid.height, grid.width, grid.res, smio.band_count(path))


def dem_pixels():
    """Pixels of the DEM the terrain job reads: its header where it exists, else the region at its resolution."""
    dem = INPUTS.predictors.get("dem")
    if dem and Path(dem).exists():
        grid = smio.read_grid(dem)
        return grid.height * grid.width
    res = config["acquire"]["dem"]["res"] if SOURCE == "earthdata" else 30
    return int(
        REGION.pixels(res) * 1.25
    )  # the demo's UTM DEM covers the region with a margin


REGION = run_region()
EXAMPLES = config["samples"]["per_scale"] * len(TRAIN_SCALES)

# The fine-scale work runs one job per tile of coarse cells (config tiles.cells), known from the region when the DAG
# is built; the smooth correction spans the whole region, so it keeps one tile.
TILE_CELLS = (
    0 if config["predict"]["correction"] == "smooth" else config["tiles"]["cells"]
)
TILES = {
    tile.name: tile for tile in smgrid.tiles((REGION.rows, REGION.cols), TILE_CELLS)
}
# GDAL's compression threads of a merge (merge_tiles, merge_needed, merge_scale): the same bytes, in less time
MERGE_THREADS = config["tiles"]["merge_threads"]


def tile_cells(wildcards):
    """[first row, first col, rows, cols] of the job's tile, in coarse cells."""
    tile = TILES[wildcards.tile]
    return [tile.row, tile.col, tile.rows, tile.cols]


def tile_pixel_days(wildcards):
    """Pixel-days of the job's tile at the finest scale."""
    tile = TILES[wildcards.tile]
    return REGION.cell_pixel_days(float(FINE)) * tile.rows * tile.cols


def map_dtype(wildcards):
    """How a written map stores its values (config outputs.dtype); the area of applicability's dissimilarity index
    (unbounded, not a soil moisture) always as float32."""
    return "float32" if wildcards.name == "aoa" else OUTPUTS["dtype"]


def coarse_frame():
    """The coarse grid and dates, known when the DAG is built: the coarse input's header where it exists, else as
    the demo or the download will write it."""
    path = INPUTS.coarse["surface"]
    if Path(path).exists():
        return smio.read_grid(path), smio.read_dates(path)
    if SOURCE == "demo":
        frame = make_frame(config["demo"], 1)
        return frame.coarse, frame.dates
    acquire = config["acquire"]
    region = make_region(acquire["bbox"], acquire["start"], acquire["end"])
    return coarse_grid(region), region.days


COARSE_GRID, COARSE_DATES = coarse_frame()
CHUNKS = (
    smchunks.split(COARSE_DATES, config["chunks"]["by"], config["chunks"]["lead_days"])
    if CHUNKED
    else {}
)
if CHUNKED:

    wildcard_constraints:
        chunk="|".join(CHUNKS),


def in_chunk(wildcards):
    """True for a job of a time chunk's daily work (its wildcards name the chunk)."""
    return CHUNKED and "chunk" in wildcards.keys()


def chunk_folder(wildcards):
    """The folder of a job's daily work: its time chunk's, or the run's."""
    return f"{R}/chunks/{wildcards.chunk}" if in_chunk(wildcards) else R


# a time chunk carries the antecedent precipitation indices from the chunk before it (rule api_state), so they equal
# a whole period's exactly; only the LSTM's own memory rests on the lead-in days
CARRIES_API = (
    CHUNKED
    and "precipitation" in INPUTS.dynamic
    and bool(config["derived"]["api_decay"])
)


def api_start_file(wildcards):
    """The indices the chunk before a time chunk's carried on its last day (rules api_state, predict, predict_rf,
    aoa); none for the record's first chunk, or where no index is derived."""
    if not (CARRIES_API and in_chunk(wildcards)):
        return []
    names = list(CHUNKS)
    at = names.index(wildcards.chunk)
    return f"{R}/chunks/{names[at - 1]}/api_state_{wildcards.layer}.tif" if at else []


def api_start_of(wildcards):
    """[the carried indices' raster, the day they continue from] for a time chunk's job, else None."""
    carried = api_start_file(wildcards)
    return [carried, CHUNKS[wildcards.chunk].days[0]] if carried else None


def chunk_days(wildcards):
    """The days a written map of a time chunk keeps, as merge_tiles writes it: the chunk's own, its lead-in left out;
    None (every day) for a run of one period."""
    return list(CHUNKS[wildcards.chunk].days) if in_chunk(wildcards) else None


@functools.cache
def _band_digest(path, first, last):
    return smio.band_digest(path, first, last)


def coarse_digest(wildcards):
    """The dates and values of the days of a time chunk's window in the layer's coarse input (rule chunk_coarse)."""
    window = CHUNKS[wildcards.chunk].window
    return _band_digest(INPUTS.coarse[wildcards.layer], window[0], window[-1])


def source_digest(wildcards):
    """For a time chunk's resampling of a dynamic predictor (its file read by digest, not time stamp): the dates
    and values of the observations its window is filled from (within fill.max_gap_days of it); None otherwise.
    """
    if not in_chunk(wildcards) or is_coarse_variable(wildcards):
        return None
    window, gap = CHUNKS[wildcards.chunk].window, config["fill"]["max_gap_days"]
    return _band_digest(
        raw_source(wildcards.var),
        smchunks.shift(window[0], -gap),
        smchunks.shift(window[-1], gap),
    )


def coarse_params(wildcards):
    """What a variable's resampling reads of the coarse input (rules resample and resample_tile): its grid, and its
    dates for a daily predictor (filled to them); not its values, so a changed coarse value reruns no predictor.
    """
    daily = not (is_static(wildcards) or is_coarse_variable(wildcards))
    dates = (
        list(CHUNKS[wildcards.chunk].window) if in_chunk(wildcards) else COARSE_DATES
    )
    return smresample.coarse_params(COARSE_GRID, dates if daily else None)


def tile_map(layer, name):
    """A map of one tile (the tile a wildcard): kept until the layer's map is merged (outputs.mosaic cog), or kept as
    the map's storage under its VRT (vrt). The ensemble's tiles are kept where the root zone borrows the surface's
    detail from them, so that a change of the root zone's settings reruns no surface prediction.
    """
    path = f"{CR}/tiles/{layer}/{{tile}}/{name}.tif"
    donor = ROOTZONE_FROM_SURFACE and name == predicted("ensemble")
    return temp(path) if MOSAIC == "cog" and not donor else path


# the daily variables (predictors and the coarse layers), resampled onto the finest scale one tile a job
DAILY_VARIABLES = [
    var for var in VARIABLES if LAYER_VARIANTS.get(var, (None, var))[1] not in STATIC
]


def scale_tile_parts(wildcards):
    """Every tile of a daily variable at the finest scale (rule mosaic_scale)."""
    folder = chunk_folder(wildcards)
    return [
        f"{folder}/tiles/scales/{FINE}/{wildcards.var}/{tile}.tif" for tile in TILES
    ]


def tile_parts(wildcards):
    """Every tile's part of one map (rules merge_tiles, mosaic)."""
    folder = chunk_folder(wildcards)
    return [
        f"{folder}/tiles/{wildcards.layer}/{tile}/{wildcards.name}.tif"
        for tile in TILES
    ]


def job_size(step, wildcards):
    """(work, held) of one job of `step` (a rule's name), in the units of smdown.resources.MODELS."""
    fine = float(FINE)
    if step in ("predict", "predict_forest", "predict_rf", "cubic_baseline"):
        block = config["predict"]["block_cells"]
        work = tile_pixel_days(wildcards)
        return work, min(work, REGION.cell_pixel_days(fine, block))
    if step == "merge_tiles":
        return REGION.pixel_days(fine), REGION.budget_block(fine, 32_000_000)
    if step == "resample_tile":
        work = tile_pixel_days(wildcards)
        return work, min(work, REGION.budget_block(fine, BLOCK_PIXEL_DAYS))
    if step == "resample":
        scale = None if wildcards.scale == "coarse" else float(wildcards.scale)
        static = is_static(wildcards)
        work = REGION.pixel_days(scale, static)
        return work, REGION.budget_block(scale, BLOCK_PIXEL_DAYS, static)
    if step == "samples":
        scale = None if wildcards.scale == "coarse" else float(wildcards.scale)
        samples = config["samples"]
        bags = (
            samples["per_scale"] // samples["bag_size"]
            if samples["target"] == "aggregate"
            else None
        )
        return REGION.visited_pixel_days(scale, bags), REGION.cell_pixel_days(scale)
    if step == "uncertainty":
        work = tile_pixel_days(wildcards)
        return work, min(work, REGION.budget_block(fine, 8_000_000))
    if step == "calibrate_uncertainty":
        # the stations' pixels (and a halo) over every day: bounded by one coarse cell's map
        return REGION.cell_pixel_days(fine), REGION.cell_pixel_days(fine)
    if step == "fit_refinement":
        # the predictors over the stations' cells, one cell's map at a time
        return REGION.cell_pixel_days(fine), REGION.cell_pixel_days(fine)
    if step == "refine":
        # its tile and the cells around it, whose predictors' cell means it reads
        tile = TILES[wildcards.tile]
        work = REGION.halo_pixel_days(
            fine, tile.row, tile.col, tile.rows, tile.cols, smres.REFINE_HALO
        )
        held = min(tile_pixel_days(wildcards), REGION.budget_block(fine, 8_000_000))
        return work, held
    if step == "evaluate_tile":
        work = tile_pixel_days(wildcards)
        return work, min(work, REGION.budget_block(fine, 20_000_000))
    if step == "evaluate":
        # the truth on the test cells x test days, one cell's series at a time (the tiles did the rest)
        test_share = config["samples"]["test_cells"] * config["samples"]["test_days"]
        work = REGION.pixel_days(fine) * len(LAYERS) * test_share
        return work, REGION.cell_pixel_days(fine)
    if step == "terrain":
        pixels = dem_pixels()
        return pixels, min(pixels, smterrain.WINDOW_PIXELS)
    if step == "demo":
        days = config["demo"]["days"] + config["demo"]["spinup_days"]
        pixels = REGION.pixels(30) * days
        return pixels, pixels
    if step == "train":
        return EXAMPLES * config["models"]["epochs"], EXAMPLES
    if step == "tune":
        tune = config["tune"]
        return EXAMPLES * tune["epochs"] * tune["trials"], EXAMPLES
    return EXAMPLES, EXAMPLES  # train_rf, ensemble, sensitivity


def mem_mb_of(step):
    """mem_mb of the step (a rule name) as a function of its job size, doubled on the second try (`attempt`)."""

    def mem_mb(wildcards, attempt):
        return smres.request(step, *job_size(step, wildcards), attempt).mem_mb

    return mem_mb


def runtime_of(step):
    """runtime (minutes) of the step (a rule name) as a function of its job size, doubled on the second try."""

    def runtime(wildcards, attempt):
        return smres.request(step, *job_size(step, wildcards), attempt).runtime

    return runtime


# The area of applicability (workflow/rules/applicability.smk, smdown.mapping.applicability).
def aoa_importance(wildcards):
    """The layer's permutation importance (rule sensitivity) where aoa.weights is importance; none for equal."""
    if AOA_SETTINGS["weights"] != "importance":
        return []
    return f"{R}/sensitivity/{wildcards.layer}/importance.csv"


def applicability_layers():
    """The layers whose maps the applicability table scores: those with a truth, where the run writes the area
    of applicability."""
    return [
        layer for layer in LAYERS if layer in INPUTS.truth and "aoa" in WRITTEN_MAPS
    ]


def applicability_maps():
    """(layer, method, map) of every written map the applicability table scores."""
    return [
        (layer, name, map_file(layer, name))
        for layer in applicability_layers()
        for name in EVALUATED_MAPS
        if name in WRITTEN_MAPS
    ]


def applicability_outputs():
    """The table of the error inside and outside the area of applicability, where a layer has a truth."""
    return [f"{R}/evaluation/applicability.csv"] if applicability_layers() else []

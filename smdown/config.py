"""The run configuration: schema validation with defaults, and the run's input files."""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import numpy as np
import yaml

from smdown import io
from smdown.contract import LAYERS, contract_file, layer_variable
from smdown.grid import EASE2_9KM_RES, EASE2_CRS, Grid, nested_grid
from smdown.stations import read_stations

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "workflow" / "schemas" / "config.schema.yaml"
SPLIT_KEYS = ("val_cells", "test_cells", "time_block_days", "val_days", "test_days")
DEMO_PREDICTORS = ("precipitation", "ndvi", "ndwi", "dem", "sand", "clay")
# volumetric soil moisture (m3/m3) is a fraction of the soil's volume: a coarse value outside is in other units
SOIL_MOISTURE_LIMITS = (0.0, 1.0)
# what the input checks read of one raster at most (values: 16 MB of float32), and the samples a coarse cell gets
CHECK_VALUES = 4_000_000
CHECK_SAMPLES_PER_CELL = 4


class ConfigError(Exception):
    """A bad configuration value; the message names the key."""


def _with_defaults(validator_class):
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def _key_path(error: jsonschema.ValidationError) -> str:
    path = ".".join(str(p) for p in error.absolute_path)
    return path or "(top level)"


def _filled(config: dict, schema: dict) -> dict:
    """A copy of config validated against schema, every key it leaves out given its schema default; raises
    ConfigError naming the first bad key."""
    config = copy.deepcopy(config)
    validator = _with_defaults(jsonschema.Draft202012Validator)(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.absolute_path), str(e.absolute_path)))
    if errors:
        error = errors[0]
        if error.validator == "additionalProperties":
            unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})))
            where = _key_path(error)
            keys = ", ".join(f"'{k}'" for k in unknown)
            raise ConfigError(f"config key {where}: unknown key(s) {keys}; allowed: {sorted(error.schema['properties'])}")
        raise ConfigError(f"config key '{_key_path(error)}': {error.message}")
    return config


def validate(config: dict, schema_path: Path = SCHEMA_PATH) -> dict:
    """Validate a config against the schema, filling defaults; raises ConfigError naming the key."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    static_given = isinstance(config, dict) and "static" in config
    config = _filled(config, schema)
    _check_consistency(config, static_given)
    return config


def validate_section(name: str, value: dict | None, schema_path: Path = SCHEMA_PATH) -> dict:
    """One top-level key of a config (e.g. acquire) validated against its part of the schema, the keys it leaves
    out given their schema defaults: what a step called outside Snakemake reads. Raises ConfigError naming the key."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    part = {"type": "object", "additionalProperties": False, "properties": {name: schema["properties"][name]}}
    return _filled({name: {} if value is None else value}, part)[name]


def _check_consistency(config: dict, static_given: bool = True) -> None:
    scales = config["scales"]
    missing = [s for s in config["training_scales"] if s not in scales]
    if missing:
        raise ConfigError(f"config key 'training_scales': {missing} not among 'scales' {scales}")
    if config["samples"]["target"] in ("cubic", "coarse") and min(config["training_scales"]) <= min(scales):
        raise ConfigError(
            "config key 'training_scales': with samples.target cubic or coarse they must be coarser than the "
            "prediction scale (the finest of 'scales'), where the resampled target holds no information"
        )
    patch = config["samples"]["patch"]
    if patch % 2 == 0:
        raise ConfigError(f"config key 'samples.patch': must be odd, got {patch}")
    if len(config["models"]["cnn_filters"]) != (patch - 1) // 2:
        raise ConfigError(
            f"config key 'models.cnn_filters': needs (samples.patch - 1) / 2 = {(patch - 1) // 2} layers for a "
            f"{patch}x{patch} patch, got {len(config['models']['cnn_filters'])}"
        )
    lo, hi = config["predict"]["valid_range"]
    if lo >= hi:
        raise ConfigError(f"config key 'predict.valid_range': lower bound {lo} must be below upper bound {hi}")
    if config["outputs"]["mosaic"] == "vrt" and config["outputs"]["dtype"] != "float32":
        raise ConfigError(
            f"config key 'outputs.dtype': {config['outputs']['dtype']} needs outputs.mosaic cog (a merge stores the "
            "values as int16); with mosaic vrt the maps are their float32 tiles"
        )
    if config["source"] == "local" and "inputs" not in config:
        raise ConfigError("config key 'inputs': required when source is 'local'")
    if config["chunks"]["by"] != "none" and (not config["models"]["from"] or source_of(config) != "local"):
        raise ConfigError(
            f"config key 'chunks.by': {config['chunks']['by']} needs a run applying trained models (models.from) "
            "to rasters of your own (source local): a run that trains reads its whole period, a download its own "
            "files; give models.from, or chunks: {by: none}"
        )
    if "inputs" in config:
        _check_layer_predictors(config["inputs"])
        _check_static(config["static"], config["inputs"]["predictors"], static_given)
    if config["samples"]["target"] == "truth":
        inputs = inputs_of(config)
        missing = [layer for layer in inputs.layers if layer not in inputs.truth]
        if missing:
            raise ConfigError(
                f"config key 'samples.target': truth needs a fine truth for every layer, and this run has none for "
                f"{missing} (give inputs.truth, or run the demo); it is the skill panel's oracle, not a setting "
                "for a real run"
            )


def _check_static(static: list[str], predictors: dict, given: bool) -> None:
    """Every name of `static` (set in the config) is a predictor; a default one may be missing, unless a predictor
    has it in another case (DEM for dem)."""
    names = sorted(predictors)
    for name in static:
        if name in predictors:
            continue
        near = [n for n in names if n.lower() == name.lower()]
        where = "" if given else f" (static defaults to {static}: set it to the names of your one-band predictors)"
        if near:
            raise ConfigError(
                f"config key 'static': '{name}' is not among 'inputs.predictors' {names}; names are case-sensitive: "
                f"did you mean '{near[0]}'?{where}"
            )
        if given:
            raise ConfigError(
                f"config key 'static': '{name}' is not among 'inputs.predictors' {names}; list there the names of "
                "the one-band (undated) predictors"
            )


def _check_layer_predictors(inputs: dict) -> None:
    """A layer-specific raster replaces a shared predictor for a layer the run has."""
    for layer, names in inputs.get("layer_predictors", {}).items():
        if layer not in inputs["coarse"]:
            raise ConfigError(f"config key 'inputs.layer_predictors.{layer}': the run has no coarse '{layer}' layer")
        for name in names:
            if name not in inputs["predictors"]:
                raise ConfigError(
                    f"config key 'inputs.layer_predictors.{layer}.{name}': not among 'inputs.predictors' "
                    f"{sorted(inputs['predictors'])} (a layer-specific raster replaces a shared predictor)"
                )
            if layer_variable(name, layer) in inputs["predictors"]:
                raise ConfigError(
                    f"config key 'inputs.layer_predictors.{layer}.{name}': clashes with the predictor "
                    f"'{layer_variable(name, layer)}'; rename that predictor"
                )


@dataclass
class Inputs:
    """The data-contract files of a run."""

    coarse: dict[str, str]
    predictors: dict[str, str]
    static: list[str]
    stations: str | None = None
    truth: dict[str, str] = field(default_factory=dict)
    # layer -> predictor name -> raster used for that layer only (e.g. texture at root-zone depth)
    layer_predictors: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def layers(self) -> list[str]:
        return [layer for layer in LAYERS if layer in self.coarse]

    @property
    def dynamic(self) -> list[str]:
        return [name for name in self.predictors if name not in self.static]

    def variants(self) -> dict[str, tuple[str, str]]:
        """Variable name of each layer-specific predictor raster (layer_variable) -> (layer, name)."""
        return {layer_variable(name, layer): (layer, name)
                for layer, names in self.layer_predictors.items() for name in names}


def source_of(config: dict) -> str:
    if config["source"] != "auto":
        return config["source"]
    return "local" if "inputs" in config else "demo"


def resource_dir(config: dict) -> str:
    """The run's generated or downloaded inputs: its own folder, so two runs (two demo worlds) never share files."""
    return f"resources/{config['run']}"


def inputs_of(config: dict) -> Inputs:
    """The contract files of the run: the user's `inputs`, or the demo / acquired files under resources/."""
    source = source_of(config)
    static = list(config["static"])
    if source == "local":
        given = config["inputs"]
        return Inputs(
            coarse=dict(given["coarse"]),
            predictors=dict(given["predictors"]),
            static=[s for s in static if s in given["predictors"]],
            stations=given.get("stations"),
            truth=dict(given.get("truth", {})),
            layer_predictors={layer: dict(names) for layer, names in given.get("layer_predictors", {}).items()},
        )
    base = resource_dir(config)
    names = list(DEMO_PREDICTORS)
    stations = f"{base}/{contract_file('stations')}"
    truth = {layer: f"{base}/{contract_file(f'truth_{layer}')}" for layer in LAYERS}
    layer_predictors = {}
    if source == "earthdata":
        # SoilGrids texture is acquired for each layer's depth (0-5 cm and 0-100 cm)
        layer_predictors = {"rootzone": {name: f"{base}/{contract_file(f'{name}_rootzone')}" for name in ("sand", "clay")}}
        acquire = config["acquire"]
        enabled = acquire["sentinel1"]["enabled"]
        # the rule of smdown.acquire.sentinel1.sentinel1_enabled (not imported here: it pulls in rasterio and h5py)
        if enabled is True or (enabled == "auto" and os.environ.get("PC_SDK_SUBSCRIPTION_KEY")):
            names += ["s1_vv", "s1_vh"]
        ismn = acquire["ismn"]
        stations = stations if (ismn["path"] or ismn["url"]) else None
        truth = {}
    return Inputs(
        coarse={layer: f"{base}/{contract_file(f'coarse_{layer}')}" for layer in LAYERS},
        predictors={name: f"{base}/{contract_file(name)}" for name in names},
        static=[s for s in static if s in names],
        stations=stations,
        truth=truth,
        layer_predictors=layer_predictors,
    )


def check_inputs(inputs: Inputs) -> None:
    """Check the contract files before any job runs; raises io.InputError naming the file.

    Each raster is read only as far as a check needs: headers and band descriptions, a sample of the coarse
    layers' bands, and each predictor at a few points of every coarse cell (io.sample_at)."""
    coarse_grid = io.read_grid(inputs.coarse["surface"])
    _check_coarse_grid(inputs.coarse["surface"], coarse_grid)
    dates = {}
    for layer, path in inputs.coarse.items():
        dates[layer] = io.read_dates(path)
    d1 = dates["surface"]
    for layer, d2 in dates.items():
        if d2 != d1:
            raise io.InputError(
                f"{inputs.coarse[layer]}: coarse layer '{layer}' has other dates than the surface layer "
                f"({len(d2)} days {d2[0]}..{d2[-1]} vs {len(d1)} days {d1[0]}..{d1[-1]})"
            )
    with_data = np.zeros(coarse_grid.shape, dtype=bool)
    for layer, path in inputs.coarse.items():
        with_data |= _check_coarse_values(layer, path, coarse_grid)
    coarse_dates = dates["surface"]
    rasters = list(inputs.predictors.items())
    rasters += [(name, path) for names in inputs.layer_predictors.values() for name, path in names.items()]
    for name, path in rasters:
        if name in inputs.static:
            bands = io.band_count(path)
            if bands != 1:
                raise io.InputError(f"{path}: static predictor '{name}' must have one band, found {bands}")
        else:
            predictor_dates = _predictor_dates(name, path, inputs.static)
            if predictor_dates[-1] < coarse_dates[0] or predictor_dates[0] > coarse_dates[-1]:
                raise io.InputError(
                    f"{path}: predictor '{name}' dates {predictor_dates[0]}..{predictor_dates[-1]} do not overlap "
                    f"the coarse dates {coarse_dates[0]}..{coarse_dates[-1]}"
                )
        if not io.overlaps(path, coarse_grid):
            raise io.InputError(f"{path}: predictor '{name}' does not overlap the coarse grid of {inputs.coarse['surface']}")
        _check_coverage(name, path, coarse_grid, with_data)
    for layer, path in inputs.truth.items():
        if not Path(path).exists():
            raise io.InputError(f"{path}: truth file for layer '{layer}' not found")
    if inputs.stations:
        if not Path(inputs.stations).exists():
            raise io.InputError(f"{inputs.stations}: stations file not found")
        read_stations(inputs.stations)


def ease2_warp_command(path: str, grid: Grid) -> str:
    """The gdalwarp command that puts a raster on the EASE-Grid 2.0 9 km grid of SMAP (EPSG:6933), its cells
    aligned on the grid's origin (a whole number of cells from 0, so -tap aligns them)."""
    target = Path(path).with_name(f"{Path(path).stem}_ease2.tif")
    return (f"gdalwarp -t_srs {EASE2_CRS} -tr {EASE2_9KM_RES:.9f} {EASE2_9KM_RES:.9f} -tap -r near "
            f"{path} {target}")


def _check_coarse_grid(path: str, grid: Grid) -> None:
    """The coarse grid's cells are square and in metres (each scale nests in them by a whole factor)."""
    if io.is_geographic(grid.crs):
        width, height = io.pixel_size_m(grid)
        raise io.InputError(
            f"{path}: the coarse soil moisture is on a geographic grid ({grid.crs}, cells of {grid.res:.4g} degrees, "
            f"about {width / 1000:.1f} x {height / 1000:.1f} km here); the workflow needs it on a grid in metres, "
            f"whose cells every scale subdivides exactly: SMAP's own EASE-Grid 2.0 9 km grid ({EASE2_CRS}, "
            f"{EASE2_9KM_RES:.3f} m). Warp it there (nearest, so each value stays one of the product's), e.g. "
            f"{ease2_warp_command(path, grid)}"
        )
    width, height = io.pixel_size_m(grid)
    if not (math.isclose(width, grid.res, rel_tol=1e-6) and math.isclose(height, -grid.transform.e, rel_tol=1e-6)):
        raise io.InputError(
            f"{path}: the coarse grid's units ({grid.crs}) are not metres (cells of {grid.res:.6g} units, "
            f"{width:.1f} m); warp it onto SMAP's EASE-Grid 2.0 9 km grid, e.g. {ease2_warp_command(path, grid)}"
        )
    if not math.isclose(grid.res, -grid.transform.e, rel_tol=1e-6):
        raise io.InputError(
            f"{path}: the coarse cells are not square ({grid.res:.6g} x {-grid.transform.e:.6g} m); warp it onto "
            f"SMAP's EASE-Grid 2.0 9 km grid, e.g. {ease2_warp_command(path, grid)}"
        )


def _evenly(count: int, most: int) -> list[int]:
    """At most `most` of `count` bands (0-based), evenly spread from the first to the last."""
    if count <= most:
        return list(range(count))
    return sorted({int(round(i)) for i in np.linspace(0, count - 1, max(most, 1))})


def _bands_read(read: int, count: int) -> str:
    """What a check read of a raster's bands, in words."""
    if count == 1:
        return "its one band"
    return f"its {count} bands" if read == count else f"{read} of its {count} bands, evenly spread"


def _check_coarse_values(layer: str, path: str, grid: Grid) -> np.ndarray:
    """The coarse values (a sample of the bands) are volumetric soil moisture; returns the cells with a value."""
    bands = _evenly(io.band_count(path), max(CHECK_VALUES // (grid.height * grid.width), 1))
    data = io.read_window(path, 0, 0, grid.height, grid.width, bands)
    finite = np.isfinite(data)
    read = _bands_read(len(bands), io.band_count(path))
    if not finite.any():
        raise io.InputError(f"{path}: coarse layer '{layer}' has no value (all NaN or nodata in {read})")
    low, high = float(data[finite].min()), float(data[finite].max())
    lo, hi = SOIL_MOISTURE_LIMITS
    if low >= lo and high <= hi:
        return finite.any(axis=0)
    found = f"{path}: coarse layer '{layer}' has values {low:.4g}..{high:.4g} (in {read})"
    expected = f"volumetric soil moisture in m3/m3 lies within [{lo:g}, {hi:g}]"
    if low >= lo and high <= 100.0 and float(np.median(data[finite])) > hi:
        raise io.InputError(
            f"{found}; {expected}: these look like percent (%vol). Divide them by 100, keeping the band "
            f"descriptions (the dates)"
        )
    if low < lo:
        below = data[finite & (data < lo)]
        value = float(np.median(below))
        if np.all(below == value):
            raise io.InputError(
                f"{found}; {expected}: {value:g} looks like a nodata value the file does not declare. Declare it, "
                f"e.g. gdal_edit.py -a_nodata {value:g} {path}"
            )
    raise io.InputError(
        f"{found}; {expected}. Check its units and scale factor (an integer product's scale_factor not applied?)"
    )


def _predictor_dates(name: str, path: str, static: list[str]) -> list[str]:
    """A dynamic predictor's dates; one undated band is a static predictor the config does not call static."""
    try:
        return io.read_dates(path)
    except io.InputError as err:
        if io.band_count(path) == 1:
            raise io.InputError(
                f"{path}: predictor '{name}' has one band without a date: if it is static (as a DEM or soil "
                f"texture), add '{name}' to config key 'static' (now {static})"
            ) from err
        raise


def _check_coverage(name: str, path: str, coarse: Grid, with_data: np.ndarray) -> None:
    """The predictor has a value in every coarse cell with soil moisture (in one of its bands at least), checked
    at a few points of each cell."""
    cells = coarse.height * coarse.width
    per_cell = max(1, min(CHECK_SAMPLES_PER_CELL, math.isqrt(max(CHECK_VALUES // 64 // cells, 1))))
    count = io.band_count(path)
    bands = _evenly(count, max(CHECK_VALUES // (cells * per_cell**2), 1))
    values = io.sample_at(path, nested_grid(coarse, per_cell), bands)
    has = np.isfinite(values).any(axis=0).reshape(coarse.height, per_cell, coarse.width, per_cell).any(axis=(1, 3))
    read = _bands_read(len(bands), count)
    if not has.any():
        raise io.InputError(
            f"{path}: predictor '{name}' has no value over the coarse grid (all NaN or nodata in {read}); "
            "expected values over every coarse cell"
        )
    missing = with_data & ~has
    if missing.any():
        share = 1.0 - missing.sum() / with_data.sum()
        row, col = (int(i[0]) for i in np.nonzero(missing))
        x, y = coarse.transform @ (col + 0.5, row + 0.5)
        lon, lat = io.to_lonlat(coarse.crs, x, y)
        raise io.InputError(
            f"{path}: predictor '{name}' covers {math.floor(100 * share)} % of the coarse grid's extent: "
            f"{int(missing.sum())} of the {int(with_data.sum())} coarse cells with soil moisture have no value "
            f"in {read} (the first at row {row}, col {col}: lon {float(lon[0]):.3f}, lat {float(lat[0]):.3f}); "
            "expected a value in every cell: give a raster that covers the whole region, or crop the coarse "
            "rasters to the predictor's extent"
        )


def model_inputs(config: dict, features: dict) -> dict:
    """What a model's inputs mean (its signature): the features (FeatureSpec fields) and the sample geometry."""
    s = config["samples"]
    return {"patch": s["patch"], "sequence_days": s["sequence_days"], "target": s["target"], "spec": features}


def split_settings(config: dict) -> dict:
    """The keys of `samples` that decide the train / validation / test split."""
    return {key: config["samples"][key] for key in SPLIT_KEYS}


def sample_settings(config: dict) -> dict:
    """The keys of `samples` that decide how examples are drawn (the split keys left out)."""
    return {key: value for key, value in config["samples"].items() if key not in SPLIT_KEYS}


def tune_settings(config: dict) -> dict:
    """How the members are tuned (config `tune` without the switch, which decides the DAG instead)."""
    return {key: value for key, value in config["tune"].items() if key != "enabled"}


def hyper_parameters(config: dict) -> dict:
    """The training settings of the deep members (config `models` without the list of members and the trained run
    a run applies, models.from, which decides the DAG instead)."""
    return {key: value for key, value in config["models"].items() if key not in ("members", "from")}


def scale_name(scale: float) -> str:
    return f"{scale:g}"


def load(path: str | Path) -> dict:
    """Read and validate a YAML config file."""
    return validate(yaml.safe_load(Path(path).read_text()) or {})


# ------------------------------------------------------------ applying a trained run (config models.from)
# a predictor's values this many times larger or smaller than those the models were trained on, and outside their
# range, are in another unit (percent for a fraction, mm for m): refused
UNIT_RATIO = 20.0


def applied_files(source: str, layer: str, members: list[str], aoa: bool) -> list[str]:
    """The files of a trained run that a run applying it reads for one layer (config models.from)."""
    models = [f"{source}/models/{layer}/{name}.{ext}" for name in members for ext in ("keras", "json")]
    models += [f"{source}/models/{layer}/rf.joblib", f"{source}/models/{layer}/rf.json"]
    ensemble = [f"{source}/ensemble/{layer}/{name}" for name in ("weights.csv", "calibration.json")]
    return models + ensemble + ([f"{source}/ensemble/{layer}/aoa.json"] if aoa else [])


def _finest_scale(source: str) -> str | None:
    """The finest scale a trained run mapped at (the smallest of results/<run>/scales/), None where none is left."""
    scales = [d.name for d in Path(source, "scales").glob("*") if d.is_dir() and d.name != "coarse"]
    numbers = [float(name) for name in scales if name.replace(".", "", 1).isdigit()]
    return scale_name(min(numbers)) if numbers else None


def _compare_features(meta: dict, model_inputs: dict, where: str) -> None:
    """The predictors and derived features of a trained member's sidecar against this run's (model_inputs)."""
    trained, here = meta["spec"], model_inputs["spec"]
    for kind in ("dynamic", "static"):
        other = "static" if kind == "dynamic" else "dynamic"
        for name in trained[kind]:
            if name in here[other]:
                raise ConfigError(f"models.from: predictor '{name}' is {other} in this run but the models of "
                                  f"{where} were trained on it as {kind} (config key 'static')")
            if name not in here[kind]:
                raise ConfigError(f"models.from: predictor '{name}' is missing: the models of {where} were trained "
                                  f"on it; give it in inputs.predictors (predictors of this run: "
                                  f"{here['dynamic'] + here['static']})")
        for name in here[kind]:
            if name not in trained[kind] and name not in trained[other]:
                raise ConfigError(f"models.from: predictor '{name}' of this run was not among those the models of "
                                  f"{where} were trained on ({trained['dynamic'] + trained['static']}); leave it "
                                  "out of inputs.predictors")
    for key, setting in (("api_decay", "derived.api_decay"), ("day_of_year", "derived.day_of_year")):
        if trained[key] != here[key]:
            raise ConfigError(f"models.from: {setting} is {here[key]} in this run but the models of {where} were "
                              f"trained with {trained[key]}")
    for key in ("patch", "sequence_days", "target"):
        if meta[key] != model_inputs[key]:
            raise ConfigError(f"models.from: samples.{key} is {model_inputs[key]!r} in this run but the models of "
                              f"{where} were trained with {meta[key]!r}")


def check_units(name: str, path: str, values: np.ndarray, trained: dict, where: str) -> None:
    """A predictor's values (a sample of its raster) against the quantiles of the feature the models were trained on
    (`trained`: q01, q50, q99): a median outside the trained range and UNIT_RATIO times off is another unit."""
    finite = values[np.isfinite(values)]
    if not finite.size:
        return
    median = float(np.median(finite))
    low, mid, high = trained["q01"], trained["q50"], trained["q99"]
    if low <= median <= high or mid == 0 or median == 0:
        return
    ratio = abs(median / mid)
    if ratio >= UNIT_RATIO or ratio <= 1 / UNIT_RATIO:
        raise ConfigError(f"models.from: predictor '{name}' ({path}) has values around {median:.4g}, but the models of "
                          f"{where} were trained on {low:.4g}..{high:.4g} (median {mid:.4g}): {ratio:.3g} times "
                          "as large, another unit? Convert it to the unit of the trained run")


def check_applied(source: str, layers: list[str], members: list[str], model_inputs: dict, fine: str,
                  predictors: dict[str, str] | None = None, aoa: bool = True) -> dict[str, bool]:
    """Check a trained run before a run applying it schedules any job (config models.from): its files are there,
    it was trained on this run's predictors (names, static or dynamic, derived features, sample geometry), at this
    run's finest scale, with this run's members, and (`predictors`: name -> raster of this run, where they exist) on
    values in the same units. Raises ConfigError naming the key or the predictor; returns, per layer, whether the
    trained run refines its ensemble with the stations (its refinement.json is reused)."""
    import json

    where = source
    if not Path(source).is_dir():
        raise ConfigError(f"models.from: {source} is not a folder (the results folder of a trained run, e.g. "
                          "results/<run>, relative to the working directory)")
    missing = [f for layer in layers for f in applied_files(source, layer, members, aoa) if not Path(f).exists()]
    if missing:
        raise ConfigError(f"models.from: {source} lacks {missing}: finish that run first (snakemake --configfile "
                          "<its config>) or choose another one")
    finest = _finest_scale(source)
    if finest is not None and finest != fine:
        raise ConfigError(f"scales: the finest scale is {fine} m in this run but {source} was mapped at {finest} m: "
                          "its members (the CNN's patch, the LSTM's pixels) apply at that scale only")
    for layer in layers:
        for name in [*members, "rf"]:
            meta = json.loads(Path(source, "models", layer, f"{name}.json").read_text())
            _compare_features(meta, model_inputs, f"{where} ({layer} {name})")
        weights = Path(source, "ensemble", layer, "weights.csv").read_text().splitlines()
        trained = {line.split(",")[0] for line in weights[1:] if line}
        absent = [m for m in members if m not in trained]
        if absent:
            raise ConfigError(f"models.members: {absent} are not members of the ensemble of {source} "
                              f"({sorted(trained)})")
    if predictors:
        reference = json.loads(Path(source, "ensemble", layers[0], "aoa.json").read_text()) if aoa else {}
        ranges = reference.get("ranges", {})
        for name, path in predictors.items():
            if name in ranges and Path(path).exists():
                check_units(name, path, _sampled(path), ranges[name], where)
    return {layer: Path(source, "ensemble", layer, "refinement.json").exists() for layer in layers}


def _sampled(path: str) -> np.ndarray:
    """A raster's values at up to 16 x 16 points of its own grid over a few bands (what a unit check needs)."""
    grid = io.read_grid(path)
    rows, cols = min(grid.height, 16), min(grid.width, 16)
    sample = Grid(grid.crs, grid.transform * grid.transform.scale(grid.width / cols, grid.height / rows), rows, cols)
    return io.sample_at(path, sample, _evenly(io.band_count(path), 4))

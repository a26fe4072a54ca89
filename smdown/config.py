"""The run configuration: schema validation with defaults, and the run's input files."""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import yaml

from smdown import io
from smdown.contract import LAYERS, contract_file, layer_variable
from smdown.stations import read_stations

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "workflow" / "schemas" / "config.schema.yaml"
SPLIT_KEYS = ("val_cells", "test_cells", "time_block_days", "val_days", "test_days")
DEMO_PREDICTORS = ("precipitation", "ndvi", "ndwi", "dem", "sand", "clay")


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


def validate(config: dict, schema_path: Path = SCHEMA_PATH) -> dict:
    """Validate a config against the schema, filling defaults; raises ConfigError naming the key."""
    schema = yaml.safe_load(Path(schema_path).read_text())
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
    _check_consistency(config)
    return config


def _check_consistency(config: dict) -> None:
    scales = config["scales"]
    missing = [s for s in config["training_scales"] if s not in scales]
    if missing:
        raise ConfigError(f"config key 'training_scales': {missing} not among 'scales' {scales}")
    if config["samples"]["target"] != "aggregate" and min(config["training_scales"]) <= min(scales):
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
    if config["source"] == "local" and "inputs" not in config:
        raise ConfigError("config key 'inputs': required when source is 'local'")
    if "inputs" in config:
        _check_layer_predictors(config["inputs"])


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
        acquire = config.get("acquire") or {}
        enabled = (acquire.get("sentinel1") or {}).get("enabled", False)
        # the rule of smdown.acquire.sentinel1.sentinel1_enabled (not imported here: it pulls in rasterio and h5py)
        if enabled is True or (enabled == "auto" and os.environ.get("PC_SDK_SUBSCRIPTION_KEY")):
            names += ["s1_vv", "s1_vh"]
        ismn = acquire.get("ismn") or {}
        stations = stations if (ismn.get("path") or ismn.get("url")) else None
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
    """Check the contract files before any job runs; raises io.InputError naming the file."""
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
    coarse_grid = io.read_grid(inputs.coarse["surface"])
    coarse_dates = dates["surface"]
    rasters = list(inputs.predictors.items())
    rasters += [(name, path) for names in inputs.layer_predictors.values() for name, path in names.items()]
    for name, path in rasters:
        if name in inputs.static:
            bands = io.band_count(path)
            if bands != 1:
                raise io.InputError(f"{path}: static predictor '{name}' must have one band, found {bands}")
        else:
            predictor_dates = io.read_dates(path)
            if predictor_dates[-1] < coarse_dates[0] or predictor_dates[0] > coarse_dates[-1]:
                raise io.InputError(
                    f"{path}: predictor '{name}' dates {predictor_dates[0]}..{predictor_dates[-1]} do not overlap "
                    f"the coarse dates {coarse_dates[0]}..{coarse_dates[-1]}"
                )
        if not io.overlaps(path, coarse_grid):
            raise io.InputError(f"{path}: predictor '{name}' does not overlap the coarse grid of {inputs.coarse['surface']}")
    for layer, path in inputs.truth.items():
        if not Path(path).exists():
            raise io.InputError(f"{path}: truth file for layer '{layer}' not found")
    if inputs.stations:
        if not Path(inputs.stations).exists():
            raise io.InputError(f"{inputs.stations}: stations file not found")
        read_stations(inputs.stations)


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
    """The training settings of the deep members (config `models` without the list of members)."""
    return {key: value for key, value in config["models"].items() if key != "members"}


def scale_name(scale: float) -> str:
    return f"{scale:g}"


def load(path: str | Path) -> dict:
    """Read and validate a YAML config file."""
    return validate(yaml.safe_load(Path(path).read_text()) or {})

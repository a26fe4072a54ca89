"""The run configuration: defaults, errors that name the key, consistency checks, the run's input files."""

from pathlib import Path

import pytest
import yaml

from smdown import config as smconfig
from smdown.config import ConfigError, validate

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_are_filled_without_touching_the_input():
    given = {"samples": {"patch": 5}, "models": {"cnn_filters": [8, 8]}}
    config = validate(given)
    assert given == {"samples": {"patch": 5}, "models": {"cnn_filters": [8, 8]}}
    assert config["run"] == "demo" and config["source"] == "auto" and config["seed"] == 42
    assert config["scales"] == [100, 50, 30] and config["training_scales"] == [100, 50, 30]
    assert config["samples"]["patch"] == 5 and config["samples"]["per_scale"] == 24000
    assert config["fill"] == {"max_gap_days": 45}
    assert config["models"]["members"] == ["dnn", "cnn", "lstm"] and config["models"]["cnn_filters"] == [8, 8]
    assert config["demo"]["seed"] == 42 and config["demo"]["revisit_days"] == 5  # nested defaults of a default {}
    assert config["static"] == ["dem", "sand", "clay"]
    assert config["derived"]["terrain"] == ["slope", "aspect", "twi"]


def test_every_schema_default_is_filled():
    schema = yaml.safe_load(smconfig.SCHEMA_PATH.read_text())
    config = validate({})
    checked = 0

    def walk(node, value, where):
        nonlocal checked
        for name, sub in node.get("properties", {}).items():
            if "default" in sub:
                assert name in value, f"{where}{name} not filled"
                if sub["default"] != {}:
                    assert value[name] == sub["default"], f"{where}{name}"
                checked += 1
                walk(sub, value[name], f"{where}{name}.")

    walk(schema, config, "")
    assert checked > 60


def test_the_shipped_configs_are_valid():
    assert smconfig.load(ROOT / "config" / "config.yaml")["run"] == "demo"
    for path in sorted((ROOT / "config" / "examples").glob("*.yaml")):
        smconfig.load(path)


@pytest.mark.parametrize(
    "config, key",
    [
        ({"samples": {"per_scale": "many"}}, "samples.per_scale"),
        ({"samples": {"per_scale": 10}}, "samples.per_scale"),  # below the minimum
        ({"fill": {"max_gap_days": 4.5}}, "fill.max_gap_days"),
        ({"scales": "30"}, "scales"),
        ({"models": {"members": ["dnn", "gru"]}}, "models.members.1"),
        ({"ensemble": {"weighting": "median"}}, "ensemble.weighting"),
        ({"ensemble": {"weighting": {"surface": "median"}}}, "ensemble.weighting"),
        ({"ensemble": {"weighting": {"deep": "equal"}}}, "ensemble.weighting"),
        ({"run": "my run"}, "run"),
        ({"uncertainty": {"station_fit": "both"}}, "uncertainty.station_fit"),
        ({"uncertainty": {"station_fit": {"surface": "ridge"}}}, "uncertainty.station_fit"),
        ({"uncertainty": {"prior_weight": -1}}, "uncertainty.prior_weight"),
        ({"refine": {"min_stations": 2}}, "refine.min_stations"),  # below the 3 that leaving one out needs
        ({"refine": {"predictors": []}}, "refine.predictors"),
        ({"refine": {"predictors": "ndvi"}}, "refine.predictors"),
        ({"inputs": {"coarse": {"surface": 5}, "predictors": {"dem": "dem.tif"}}}, "inputs.coarse.surface"),
    ],
)
def test_a_value_of_the_wrong_type_names_its_key(config, key):
    with pytest.raises(ConfigError, match=rf"config key '{key}'"):
        validate(config)


def test_the_wrong_type_message_says_what_is_wrong():
    with pytest.raises(ConfigError) as err:
        validate({"samples": {"per_scale": "many"}})
    assert str(err.value) == "config key 'samples.per_scale': 'many' is not of type 'integer'"


@pytest.mark.parametrize(
    "config, where, unknown",
    [
        ({"sclaes": [1000, 30]}, "(top level)", "sclaes"),
        ({"samples": {"pacth": 5}}, "samples", "pacth"),
        ({"models": {"epochs": 3, "layers": 2}}, "models", "layers"),
        ({"inputs": {"coarse": {"surface": "a.tif", "root": "b.tif"}, "predictors": {"dem": "d.tif"}}},
         "inputs.coarse", "root"),
    ],
)
def test_an_unknown_key_is_named(config, where, unknown):
    with pytest.raises(ConfigError) as err:
        validate(config)
    message = str(err.value)
    assert f"config key {where}" in message and f"'{unknown}'" in message
    assert "allowed" in message


def test_a_missing_required_key_is_named():
    with pytest.raises(ConfigError, match=r"config key 'inputs'.*'predictors' is a required property"):
        validate({"inputs": {"coarse": {"surface": "a.tif"}}})


@pytest.mark.parametrize(
    "config, message",
    [
        ({"training_scales": [100, 200]}, r"'training_scales': \[200\] not among 'scales'"),
        ({"scales": [1000, 100], "training_scales": [100], "samples": {"target": "cubic"}},
         "'training_scales': with samples.target cubic or coarse they must be coarser"),
        ({"samples": {"patch": 6}}, "'samples.patch': must be odd, got 6"),
        ({"samples": {"patch": 9}}, r"'models.cnn_filters': needs .* = 4 layers"),
        ({"predict": {"valid_range": [0.5, 0.1]}}, "'predict.valid_range': lower bound 0.5"),
        ({"source": "local"}, "'inputs': required when source is 'local'"),
        ({"inputs": {"coarse": {"surface": "s.tif"}, "predictors": {"sand": "a.tif"},
                     "layer_predictors": {"rootzone": {"sand": "b.tif"}}}},
         "'inputs.layer_predictors.rootzone': the run has no coarse 'rootzone' layer"),
        ({"inputs": {"coarse": {"surface": "s.tif", "rootzone": "r.tif"}, "predictors": {"sand": "a.tif"},
                     "layer_predictors": {"rootzone": {"silt": "b.tif"}}}},
         r"'inputs.layer_predictors.rootzone.silt': not among 'inputs.predictors' \['sand'\]"),
        ({"inputs": {"coarse": {"surface": "s.tif", "rootzone": "r.tif"},
                     "predictors": {"sand": "a.tif", "sand_rootzone": "c.tif"},
                     "layer_predictors": {"rootzone": {"sand": "b.tif"}}}},
         "'inputs.layer_predictors.rootzone.sand': clashes with the predictor 'sand_rootzone'"),
    ],
)
def test_consistency_checks_name_the_key(config, message):
    with pytest.raises(ConfigError, match=message):
        validate(config)


def test_inputs_of_a_local_run_and_of_the_demo(tmp_path):
    local = validate({"run": "mine", "inputs": {
        "coarse": {"surface": "s.tif", "rootzone": "r.tif"},
        "predictors": {"ndvi": "n.tif", "dem": "d.tif", "rain": "p.tif"},
        "stations": "st.csv"}})
    assert smconfig.source_of(local) == "local"
    inputs = smconfig.inputs_of(local)
    assert inputs.coarse == {"surface": "s.tif", "rootzone": "r.tif"} and inputs.layers == ["surface", "rootzone"]
    assert inputs.static == ["dem"] and inputs.dynamic == ["ndvi", "rain"] and inputs.stations == "st.csv"
    assert inputs.truth == {}
    demo = validate({})
    assert smconfig.source_of(demo) == "demo" and smconfig.resource_dir(demo) == "resources/demo"
    assert smconfig.resource_dir(validate({"run": "other"})) == "resources/other"  # two demo worlds never share inputs
    inputs = smconfig.inputs_of(demo)
    assert inputs.coarse["rootzone"] == "resources/demo/coarse_rootzone.tif"
    assert inputs.predictors["ndvi"] == "resources/demo/ndvi.tif" and inputs.static == ["dem", "sand", "clay"]
    assert inputs.truth["surface"] == "resources/demo/truth_surface.tif"
    assert inputs.layer_predictors == {} and inputs.variants() == {}


def test_layer_predictors_replace_a_shared_one_for_their_layer():
    local = validate({"inputs": {
        "coarse": {"surface": "s.tif", "rootzone": "r.tif"},
        "predictors": {"ndvi": "n.tif", "sand": "sand_0-5cm.tif"},
        "layer_predictors": {"rootzone": {"sand": "sand_0-100cm.tif"}}}})
    inputs = smconfig.inputs_of(local)
    assert inputs.predictors == {"ndvi": "n.tif", "sand": "sand_0-5cm.tif"}
    assert inputs.layer_predictors == {"rootzone": {"sand": "sand_0-100cm.tif"}}
    assert inputs.variants() == {"sand_rootzone": ("rootzone", "sand")}
    acquired = smconfig.inputs_of(validate({"run": "cv", "source": "earthdata"}))
    assert acquired.layer_predictors["rootzone"] == {"sand": "resources/cv/sand_rootzone.tif",
                                                     "clay": "resources/cv/clay_rootzone.tif"}


def test_scale_names():
    assert smconfig.scale_name(30.0) == "30" and smconfig.scale_name(12.5) == "12.5"


def test_rule_settings_are_slices():
    """The params a rule passes hold only the keys its job reads, so another key's change reruns nothing there."""
    config = validate({"models": {"l2": 0.5, "members": ["dnn"]}, "samples": {"per_scale": 500, "val_days": 0.3}})
    assert smconfig.hyper_parameters(config)["l2"] == 0.5 and "members" not in smconfig.hyper_parameters(config)
    split = smconfig.split_settings(config)
    assert split["val_days"] == 0.3 and "per_scale" not in split
    inputs = smconfig.model_inputs(config, {"dynamic": ["ndvi"]})
    assert inputs == {"patch": 7, "sequence_days": 14, "target": "aggregate", "spec": {"dynamic": ["ndvi"]}}


def test_load_reads_yaml(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"run": "x", "fill": {"max_gap_days": 12}}))
    assert smconfig.load(path)["fill"]["max_gap_days"] == 12
    path.write_text("")
    assert smconfig.load(path)["run"] == "demo"


def test_every_schema_key_is_described_and_defaulted():
    schema = yaml.safe_load(smconfig.SCHEMA_PATH.read_text())
    missing = []

    def walk(node, where):
        for name, sub in node.get("properties", {}).items():
            key = f"{where}.{name}" if where else name
            if "description" not in sub and not key.startswith("inputs"):
                missing.append(f"{key}: description")
            if "default" not in sub and not key.startswith("inputs") and key != "inputs":
                missing.append(f"{key}: default")
            walk(sub, key)

    walk(schema, "")
    # acquire's defaults live in one place, smdown.acquire.DEFAULTS (checked against the schema below)
    assert [m for m in missing if not m.startswith("acquire.")] == []


def test_acquire_schema_keys_have_their_defaults_in_one_place():
    """Every typed acquire key (but the required bbox / start / end) has its default in smdown.acquire.DEFAULTS."""
    from smdown.acquire import DEFAULTS

    schema = yaml.safe_load(smconfig.SCHEMA_PATH.read_text())["properties"]["acquire"]
    missing = []

    def walk(node, defaults, where):
        for name, sub in node.get("properties", {}).items():
            key = f"{where}.{name}"
            if name not in defaults:
                missing.append(key)
            elif isinstance(defaults[name], dict) and "properties" in sub:
                walk(sub, defaults[name], key)

    walk(schema, {**DEFAULTS, "bbox": None, "start": None, "end": None}, "acquire")
    assert missing == []


def test_sentinel1_auto_needs_the_planetary_computer_key(monkeypatch):
    """`sentinel1.enabled: auto` asks for the Sentinel-1 files only where the key to fetch them is set."""
    config = validate({"run": "cv", "source": "earthdata", "acquire": {"sentinel1": {"enabled": "auto"}}})
    monkeypatch.delenv("PC_SDK_SUBSCRIPTION_KEY", raising=False)
    assert "s1_vv" not in smconfig.inputs_of(config).predictors
    monkeypatch.setenv("PC_SDK_SUBSCRIPTION_KEY", "key")
    assert {"s1_vv", "s1_vh"} <= set(smconfig.inputs_of(config).predictors)


def test_the_station_fit_is_one_for_both_layers_or_one_per_layer():
    assert validate({})["uncertainty"]["station_fit"] == {"surface": "learned", "rootzone": "scale"}
    assert validate({"uncertainty": {"station_fit": "scale"}})["uncertainty"]["station_fit"] == "scale"
    assert validate({"uncertainty": {"station_fit": {"rootzone": "learned"}}})["uncertainty"]["station_fit"] == {
        "surface": "learned", "rootzone": "learned"}

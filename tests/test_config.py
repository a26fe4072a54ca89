"""The run configuration: defaults, errors that name the key, consistency checks, the run's input files."""

from pathlib import Path

import numpy as np
import pytest
import yaml
from affine import Affine
from conftest import LONLAT, UTM, grid_around

from smdown import config as smconfig
from smdown import io
from smdown.config import ConfigError, validate
from smdown.grid import EASE2_9KM_RES, EASE2_9KM_X0, EASE2_9KM_Y0, Grid

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
        ({"outputs": {"mosaic": "vrt", "dtype": "int16"}}, "'outputs.dtype': int16 needs outputs.mosaic cog"),
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
    assert missing == []


def test_acquire_defaults_live_in_the_schema_only(tmp_path):
    """Every acquire key has its default in the schema, and the acquire code has none of its own: it reads the
    validated slice its rule passes, and a key missing from that slice raises instead of falling back."""
    import smdown.acquire as acquire

    schema = yaml.safe_load(smconfig.SCHEMA_PATH.read_text())["properties"]["acquire"]
    leaves = []

    def walk(node, where):
        for name, sub in node["properties"].items():
            key = f"{where}.{name}"
            assert "default" in sub and sub.get("description"), key
            if "properties" in sub:
                walk(sub, key)
            else:
                leaves.append(key.split(".")[1:])

    walk(schema, "acquire")
    assert len(leaves) > 50
    filled = acquire.settings({})  # the schema's defaults, and nothing else
    for path in leaves:
        node = filled
        for part in path:
            node = node[part]
    assert filled == validate({})["acquire"]
    assert not hasattr(acquire, "DEFAULTS")

    # a job's settings lacking a key (as if the schema had no default for it) raise; nothing fills it in
    given = {**filled, "bbox": [-120.15, 37.2, -119.85, 37.32], "start": "2023-05-01", "end": "2023-05-02",
             "cache_dir": str(tmp_path / "cache")}
    without_cache = {k: v for k, v in given.items() if k != "cache_dir"}
    with pytest.raises(KeyError, match="cache_dir"):
        acquire.params_for("dem", without_cache)
    with pytest.raises(KeyError, match="retries"):
        acquire.downloader({**given, "http": {"backoff": 1.0, "timeout": 60.0}})
    for source, key in (("ismn", "min_rootzone_depths"), ("ismn", "url"), ("sentinel1", "enabled")):
        cut = {**given, source: {k: v for k, v in given[source].items() if k != key}}
        with pytest.raises(KeyError, match=key):
            if source == "sentinel1":
                acquire.outputs_for(cut, tmp_path)
            else:
                acquire.run_source(source, {**cut, "ismn": {**cut["ismn"], "path": str(tmp_path)}},
                                   {"stations": tmp_path / "stations.csv"})


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


PREDICTORS = {"precipitation": "p.tif", "ndvi": "n.tif", "dem": "d.tif", "clay": "c.tif"}


@pytest.mark.parametrize(
    "static, predictors, message",
    [
        (["DEM", "sand", "clay"], PREDICTORS,
         r"config key 'static': 'DEM' is not among 'inputs.predictors' \['clay', 'dem', 'ndvi', 'precipitation'\]; "
         r"names are case-sensitive: did you mean 'dem'\?$"),
        (["dem", "soc"], PREDICTORS, r"config key 'static': 'soc' is not among 'inputs.predictors'"),
        # the default names are checked only for a predictor of theirs in another case
        (None, {**PREDICTORS, "Sand": "s.tif"},
         r"'sand' is not among .* did you mean 'Sand'\? \(static defaults to \['dem', 'sand', 'clay'\]"),
    ],
)
def test_every_static_name_is_a_predictor(static, predictors, message):
    config = {"inputs": {"coarse": {"surface": "s.tif"}, "predictors": predictors}}
    if static is not None:
        config["static"] = static
    with pytest.raises(ConfigError, match=message):
        validate(config)


def test_a_default_static_name_the_run_lacks_is_left_out():
    config = validate({"inputs": {"coarse": {"surface": "s.tif"}, "predictors": PREDICTORS}})  # no sand
    assert smconfig.inputs_of(config).static == ["dem", "clay"]


def _inputs(local_inputs, **changes) -> smconfig.Inputs:
    return smconfig.inputs_of(validate({"inputs": {**local_inputs, **changes}}))


def _rewrite(path, data, grid, dates):
    io.write_stack(path, io.Stack(np.asarray(data, dtype=np.float32), grid, dates))


def test_valid_inputs_pass_the_checks(local_inputs):
    smconfig.check_inputs(_inputs(local_inputs))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d * 100.0, r"has values 2\d\.\d+\.\.3\d\.\d+ \(in its 10 bands\); .*look like percent .*Divide them by 100"),
        (lambda d: np.where(np.arange(d.shape[-1]) == 0, -9999.0, d),
         r"-9999 looks like a nodata value the file does not declare\. Declare it, e\.g\. gdal_edit\.py -a_nodata -9999"),
        (lambda d: d * 1000.0, r"has values 2\d\d\.?\d*\.\.3\d\d\.?\d* .*Check its units and scale factor"),
        (lambda d: np.full_like(d, np.nan), r"coarse layer 'surface' has no value \(all NaN or nodata in its 10 bands\)"),
    ],
)
def test_coarse_values_are_volumetric_soil_moisture(local_inputs, change, message):
    path = local_inputs["coarse"]["surface"]
    stack = io.read_stack(path)
    _rewrite(path, change(stack.data), stack.grid, stack.dates)
    with pytest.raises(io.InputError, match=f"^{path}: .*{message}"):
        smconfig.check_inputs(_inputs(local_inputs))


def test_the_coarse_check_reads_an_even_sample_of_the_bands():
    assert smconfig._evenly(5, 10) == [0, 1, 2, 3, 4]
    spread = smconfig._evenly(300, 100)
    assert len(spread) == 100 and spread[0] == 0 and spread[-1] == 299
    assert max(np.diff(spread)) <= 4


def test_a_coarse_grid_in_degrees_is_refused_with_the_command_that_warps_it(local_inputs, coarse_grid):
    lonlat = grid_around(coarse_grid, LONLAT, 0.08, 0.0)
    for path in local_inputs["coarse"].values():
        dates = io.read_dates(path)
        _rewrite(path, np.full((len(dates), *lonlat.shape), 0.25), lonlat, dates)
    path = local_inputs["coarse"]["surface"]
    with pytest.raises(io.InputError, match=rf"^{path}: the coarse soil moisture is on a geographic grid "
                                            r"\(EPSG:4326, cells of 0\.08 degrees, about 7\.1 x 8\.9 km here\)") as err:
        smconfig.check_inputs(_inputs(local_inputs))
    command = smconfig.ease2_warp_command(path, lonlat)
    assert str(err.value).endswith(command)
    assert command.startswith("gdalwarp -t_srs EPSG:6933 -tr 9008.055210146 9008.055210146 -tap -r near ")
    # -tap aligns the cells on multiples of the resolution: the EASE-Grid 2.0 origin is one
    assert abs(EASE2_9KM_X0 / EASE2_9KM_RES - round(EASE2_9KM_X0 / EASE2_9KM_RES)) < 1e-9
    assert abs(EASE2_9KM_Y0 / EASE2_9KM_RES - round(EASE2_9KM_Y0 / EASE2_9KM_RES)) < 1e-9


def test_coarse_cells_that_are_not_square_are_refused(local_inputs, coarse_grid):
    t = coarse_grid.transform
    oblong = Grid(coarse_grid.crs, Affine(t.a, 0, t.c, 0, -t.a / 2, t.f), coarse_grid.height * 2, coarse_grid.width)
    path = local_inputs["coarse"]["surface"]
    stack = io.read_stack(path)
    _rewrite(path, np.repeat(stack.data, 2, axis=1), oblong, stack.dates)
    with pytest.raises(io.InputError, match=r"the coarse cells are not square \(9008\.06 x 4504\.03 m\)"):
        smconfig.check_inputs(_inputs(local_inputs))


def test_a_predictor_must_have_values_over_every_coarse_cell(local_inputs):
    path = local_inputs["predictors"]["ndvi"]
    stack = io.read_stack(path)
    data = stack.data.copy()
    data[:, stack.grid.height // 2:, :] = np.nan  # the southern half, on every date
    _rewrite(path, data, stack.grid, stack.dates)
    with pytest.raises(io.InputError, match=rf"^{path}: predictor 'ndvi' covers 50 % of the coarse grid's extent: 2 "
                                            r"of the 4 coarse cells with soil moisture have no value in its 3 bands "
                                            r"\(the first at row 1, col 0: "):
        smconfig.check_inputs(_inputs(local_inputs))
    # a cell without soil moisture (the sea) needs no predictor: the coarse NaN in the southern cells on every date
    for coarse in local_inputs["coarse"].values():
        stack = io.read_stack(coarse)
        stack.data[:, 1, :] = np.nan
        _rewrite(coarse, stack.data, stack.grid, stack.dates)
    smconfig.check_inputs(_inputs(local_inputs))


def test_a_cloud_on_some_dates_is_no_gap(local_inputs):
    path = local_inputs["predictors"]["ndvi"]
    stack = io.read_stack(path)
    data = stack.data.copy()
    data[:2] = np.nan  # two of its three scenes fully cloudy: the third covers the region
    _rewrite(path, data, stack.grid, stack.dates)
    smconfig.check_inputs(_inputs(local_inputs))


def test_sample_at_reads_the_pixels_under_the_grids_centres(tmp_path, coarse_grid):
    source = grid_around(coarse_grid, UTM, 30.0, 300.0)
    values = np.arange(source.height * source.width, dtype=np.float32).reshape(1, *source.shape)
    path = tmp_path / "index.tif"
    _rewrite(path, np.concatenate([values, -values]), source, None)
    inner = source.window(10, 20, 7, 5)
    np.testing.assert_array_equal(io.sample_at(path, inner), np.concatenate([values, -values])[:, 10:17, 20:25])
    np.testing.assert_array_equal(io.sample_at(path, inner, bands=[1]), -values[:, 10:17, 20:25])
    # a coarse grid is read decimated: each of its pixels gets the value of a source pixel within its own
    coarse = io.sample_at(path, coarse_grid)[0]
    rows, cols = np.divmod(coarse.astype(np.int64), source.width)
    x, y = source.transform @ (cols + 0.5, rows + 0.5)
    lon, lat = io.to_lonlat(UTM, x.ravel(), y.ravel())
    ex, ey = io.lonlat_to(coarse_grid.crs, lon, lat)
    col, row = ~coarse_grid.transform @ (ex, ey)
    expected_rows, expected_cols = np.divmod(np.arange(coarse.size), coarse_grid.width)
    np.testing.assert_array_equal(np.floor(row).astype(int), expected_rows)
    np.testing.assert_array_equal(np.floor(col).astype(int), expected_cols)
    far = Grid(LONLAT, Affine(0.01, 0, 10.0, 0, -0.01, 46.0), 3, 3)  # the Alps: no pixel of the raster
    assert np.isnan(io.sample_at(path, far)).all()


@pytest.mark.parametrize("extra", [{}, {"models": {"from": "results/trained"}}])
def test_time_chunks_need_a_run_applying_trained_models_to_rasters_of_its_own(extra):
    """A run that trains reads its whole period, and the demo (or a download) writes its own files: chunks are for
    a run applying trained models (models.from) to inputs of its own."""
    with pytest.raises(ConfigError, match="chunks.by"):
        validate({"chunks": {"by": "week"}, **extra})
    assert validate({"chunks": {"by": "none"}})["chunks"]["lead_days"] >= 0

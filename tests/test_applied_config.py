"""The unit check of a run applying a trained run (smdown.config.check_units): values far off the training's range
are refused naming the predictor; a region somewhat wetter or drier than the training's is not."""

import numpy as np
import pytest

from smdown import config as smconfig

TRAINED = {"q01": 30.0, "q50": 40.0, "q99": 50.0}  # sand in percent


def test_a_fraction_where_the_models_learned_percent_is_refused():
    with pytest.raises(smconfig.ConfigError, match=r"predictor 'sand'.*another unit"):
        smconfig.check_units("sand", "sand.tif", np.full(10, 0.4), TRAINED, "results/tiny")


@pytest.mark.parametrize("values", [np.full(10, 45.0), np.full(10, 70.0), np.array([np.nan, 12.0])])
def test_values_in_the_same_unit_pass(values):
    smconfig.check_units("sand", "sand.tif", values, TRAINED, "results/tiny")


def test_the_trained_run_must_exist(tmp_path):
    with pytest.raises(smconfig.ConfigError, match="models.from"):
        smconfig.check_applied(str(tmp_path / "nothing"), ["surface"], ["dnn"], {}, "30")

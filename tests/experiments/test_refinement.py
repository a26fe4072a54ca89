"""experiments.refinement's oracle: the anomalies' coefficients fitted on the truth of every pixel-day."""

import numpy as np
import pytest

from experiments.refinement import oracle_beta


def test_the_oracle_finds_the_coefficients_the_truth_was_made_with_and_skips_gaps():
    rng = np.random.default_rng(5)
    shape = (4, 12, 12)
    anomalies = {"ndvi": rng.standard_normal(shape), "ndwi": rng.standard_normal(shape)}
    ensemble = rng.uniform(0.1, 0.4, shape)
    truth = ensemble + 0.05 - 0.3 * anomalies["ndvi"] + 0.7 * anomalies["ndwi"] + 1e-3 * rng.standard_normal(shape)
    truth[0, :3] = np.nan
    anomalies["ndwi"][1, 5, 5] = np.nan
    assert oracle_beta(ensemble, truth, anomalies) == pytest.approx([-0.3, 0.7], abs=2e-3)

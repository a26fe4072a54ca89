"""Step of workflow/rules/predict.smk (rule uncertainty): the calibrated uncertainty map of the ensemble.

It runs after predict because its calibration on stations needs the ensemble at the stations' pixels; the map is
one more read of the ensemble and its spread, block by block of whole coarse cells (the within-cell detail is a
per-cell quantity), memory bounded by the block.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from smdown import io
from smdown import uncertainty as unc
from smdown.grid import cell_blocks

log = logging.getLogger(__name__)


def calibrate(layer: str, ensemble: str, spread: str, weights: str, coarse: str, split: str | None,
              stations: str | None, settings: dict) -> tuple[unc.Calibration, dict]:
    """The layer's calibration (smdown.uncertainty) and what it was made from (a row of calibration.csv).

    `settings`: config uncertainty (use_stations, min_station_days, station_error, coarse_error, within_factor)."""
    info: dict = {"layer": layer}
    if stations and settings["use_stations"]:
        from smdown.evaluate import station_series

        test_dates = set(json.loads(Path(split).read_text()).get("test_dates", [])) if split else set()
        series = station_series({"ensemble": ensemble, "ensemble_std": spread}, stations, layer, coarse)
        if len(series):
            series = series[~series["date"].isin(test_dates)]
            series = series[np.isfinite(series["ensemble"]) & np.isfinite(series["observed"])]
        info["station_days"] = len(series)
        if len(series) >= settings["min_station_days"]:
            error = (series["ensemble"] - series["observed"]).to_numpy()
            cal = unc.fit_stations(series["ensemble"].to_numpy(), series["ensemble_std"].to_numpy(), error,
                                   settings["station_error"])
            sig = unc.sigma(series["ensemble"].to_numpy(np.float32), series["ensemble_std"].to_numpy(np.float32),
                            np.zeros(len(series), np.float32), cal)
            info.update(stations=int(series["station"].nunique()),
                        station_coverage_90=unc.coverage(error, np.sqrt(sig**2 + settings["station_error"] ** 2)))
            log.info("%s: uncertainty calibrated on %d day(s) of %d station(s) outside the test days", layer,
                     len(series), info["stations"])
            return cal, info
        log.warning("%s: %d station-day(s) outside the test days, fewer than uncertainty.min_station_days (%d): "
                    "the prior calibration instead", layer, len(series), settings["min_station_days"])
    table = pd.read_csv(weights)
    table = table[table["member"] != "rf"]
    k = unc.within_factor({c: table[c].to_numpy() for c in table.columns}, settings["within_factor"])
    info["within_from"] = "self-similarity check" if "similarity_r" in table else "uncertainty.within_factor"
    cal = unc.Calibration(a=float(settings["coarse_error"][layer]), b=0.0, k=k, source="prior", n=0)
    log.info("%s: prior uncertainty: coarse error %.4f, within-cell factor %.3f (%s)", layer, cal.a, k,
             info["within_from"])
    return cal, info


def uncertainty(layer: str, ensemble: str, spread: str, weights: str, coarse: str, split: str | None,
                stations: str | None, output: str, calibration_out: str, settings: dict,
                max_pixels: int = 8_000_000) -> unc.Calibration:
    """Write the uncertainty map (`output`, same grid and dates as the ensemble) and calibration.csv."""
    cal, info = calibrate(layer, ensemble, spread, weights, coarse, split, stations, settings)
    grid, dates = io.read_grid(ensemble), io.read_dates(ensemble)
    coarse_grid = io.read_grid(coarse)
    factor = grid.height // coarse_grid.height
    side = max(1, int(np.sqrt(max_pixels / max(1, len(dates) * factor * factor))))
    blocks = list(cell_blocks((coarse_grid.height, coarse_grid.width), side))
    total, count = 0.0, 0
    with io.open_writer(output, grid, dates) as dst:
        for i, (r, c, h, w) in enumerate(blocks, 1):
            window = (r * factor, c * factor, h * factor, w * factor)
            mean = io.read_window(ensemble, *window)
            within = unc.cell_within_std(mean, factor) if cal.k else np.zeros_like(mean)
            sig = unc.sigma(mean, io.read_window(spread, *window), within, cal)
            io.write_window(dst, sig, *window[:2])
            finite = np.isfinite(sig)
            total, count = total + float(sig[finite].sum(dtype=np.float64)), count + int(finite.sum())
            log.info("block %d/%d done", i, len(blocks))
    info.update(cal.as_dict(), mean_uncertainty=total / max(count, 1))
    io.write_csv(calibration_out, pd.DataFrame([info]))
    log.info("%s: %s", layer, info)
    return cal

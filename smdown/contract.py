"""The data contract's names: the layers, the members, the methods a run maps and the contract's file names."""

from __future__ import annotations

LAYERS = ("surface", "rootzone")
MEMBERS = ("dnn", "cnn", "lstm")
#: every map a run can write per layer; ensemble_raw: the ensemble before the stations refined it, where they did
METHODS = ("dnn", "cnn", "lstm", "ensemble", "ensemble_raw", "rf", "cubic", "cubic_corrected")
STATION_COLUMNS = ["station", "lon", "lat", "date", "surface", "rootzone"]


def contract_file(name: str) -> str:
    """The file name of a data-contract entry in a resources folder: stations.csv, else <name>.tif."""
    return "stations.csv" if name == "stations" else f"{name}.tif"


def layer_variable(name: str, layer: str) -> str:
    """The workflow's variable name of a predictor's raster for one layer only (e.g. sand_rootzone)."""
    return f"{name}_{layer}"

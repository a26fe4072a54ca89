"""The steps of rules cube and catalog, and the choice of the maps a run writes (config outputs.maps)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

from smdown.publishing.catalog import build_catalog, validate
from smdown.publishing.cube import write_cube

log = logging.getLogger(__name__)

#: the product: the ensemble and its calibrated uncertainty
PRODUCT = ("ensemble", "uncertainty")
BASELINES = ("cubic", "cubic_corrected")
# the area of applicability's map (a dissimilarity index, not a soil moisture): written as float32 beside the maps,
# kept out of the cube and the catalogue (their units are m3 m-3)
APPLICABILITY = "aoa"


def written_maps(choice: str | Sequence[str], available: Sequence[str], members: Sequence[str],
                 own_region: bool) -> list[str]:
    """The maps of `available` (a run's, in its order) that outputs.maps `choice` writes: auto (the product for a
    region of your own, every map for the demo), all, or a list of map names and groups (product, members: the deep
    members and the forest, baselines: cubic and cubic_corrected, spread: ensemble_std). A name the run does not map
    (ensemble_raw without the stations' refinement, a member not in models.members) is an error naming the key."""
    if choice == "auto":
        # a region of your own: the product and, where the run maps it, the area of applicability
        choice = (["product", APPLICABILITY] if APPLICABILITY in available else "product") if own_region else "all"
    if choice == "all":
        return list(available)
    groups = {"product": PRODUCT, "members": (*members, "rf"), "baselines": BASELINES, "spread": ("ensemble_std",)}
    names = [choice] if isinstance(choice, str) else list(choice)
    wanted = {map_name for name in names for map_name in groups.get(name, (name,))}
    unknown = sorted(wanted - set(available))
    if unknown:
        raise ValueError(f"config key 'outputs.maps': {unknown} are not maps of this run; choose among "
                         f"{list(available)} or the groups {sorted(groups)}")
    return [name for name in available if name in wanted]


def cube(maps: Sequence[str | os.PathLike], names: Sequence[str], output: str, layer: str, dtype: str,
         run: str) -> None:
    """A layer's written maps (GeoTIFFs, `names` in their order) as one NetCDF-CF cube."""
    named = {name: path for name, path in zip(names, maps, strict=True) if name != APPLICABILITY}
    names = list(named)
    summary = write_cube(named, output, layer, dtype=dtype, attrs={"run": run})
    pixel_days = summary["days"] * summary["rows"] * summary["cols"] * len(names)
    log.info("%s: %s, %d days of %d x %d pixels, %d bytes (%.3f bytes a pixel-day, %s)", output, ", ".join(names),
             summary["days"], summary["rows"], summary["cols"], summary["bytes"], summary["bytes"] / pixel_days, dtype)


def catalog(maps: Sequence[str | os.PathLike], layers: Sequence[str], names: Sequence[str],
            cubes: Sequence[str | os.PathLike], cube_layers: Sequence[str], output: str, run: str, dtype: str) -> None:
    """The run's STAC catalogue in folder `output` (collection.json and one item per map), validated offline."""
    by_layer: dict[str, dict[str, str]] = {}
    for path, layer, name in zip(maps, layers, names, strict=True):
        if name == APPLICABILITY:
            continue
        by_layer.setdefault(layer, {})[name] = str(path)
    build_catalog(by_layer, dict(zip(cube_layers, cubes, strict=True)), output, run, dtype=dtype)
    items = validate(os.path.join(output, "collection.json"))
    log.info("%s: %d items, %d cubes, valid STAC (checked offline)", output, items, len(cubes))

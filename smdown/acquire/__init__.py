"""acquire: real sources -> the data contract files (see docs/acquire.md).

    from smdown.acquire import acquire
    paths = acquire(config, "resources/central_valley")   # {name: Path}

Sources: SMAP L4 SPL4SMGP (Earthdata) -> coarse_surface, coarse_rootzone, precipitation;
Sentinel-2 L2A (STAC) -> ndvi, ndwi; Copernicus DEM GLO-30 (STAC) -> dem; SoilGrids / POLARIS ->
sand, clay (+ _rootzone); optional Sentinel-1 (STAC) -> s1_vv, s1_vh; optional ISMN -> stations.
Every error is an smdown.io.InputError with a message naming the key, URL or file (a bad setting, an
smdown.config.ConfigError naming the key). The settings' defaults live in the config schema only.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from smdown.acquire.dem import acquire_dem
from smdown.acquire.http import Downloader
from smdown.acquire.ismn import acquire_ismn
from smdown.acquire.region import Region, make_region
from smdown.acquire.sentinel1 import acquire_sentinel1, sentinel1_enabled
from smdown.acquire.sentinel2 import acquire_sentinel2
from smdown.acquire.smap import acquire_smap
from smdown.acquire.soil import acquire_soil
from smdown.acquire.stac import KEY_ENV
from smdown.config import validate_section
from smdown.contract import contract_file
from smdown.io import InputError

log = logging.getLogger("smdown.acquire")

# Contract file names written by acquire() into its outdir.
FILES = {name: contract_file(name) for name in (
    "coarse_surface", "coarse_rootzone", "precipitation", "ndvi", "ndwi", "dem", "sand", "clay", "sand_rootzone",
    "clay_rootzone", "s1_vv", "s1_vh", "stations")}


def settings(config: dict) -> dict:
    """The acquire settings of a config: its `acquire` mapping validated against the schema, each key it leaves out
    given the schema's default (workflow/schemas/config.schema.yaml is their one home); a bad or unknown key raises
    smdown.config.ConfigError naming it. The workflow's jobs get their slice already validated (run_script)."""
    return validate_section("acquire", config.get("acquire"))


def region_of(cfg: dict) -> Region:
    for key in ("bbox", "start", "end"):
        if cfg[key] is None:
            raise InputError(f"acquire.{key}: required for a run that acquires real data")
    return make_region(cfg["bbox"], cfg["start"], cfg["end"])


def downloader(cfg: dict) -> Downloader:
    http = cfg["http"]
    return Downloader(cfg["cache_dir"], retries=http["retries"], backoff=http["backoff"], timeout=http["timeout"])


def outputs_for(cfg: dict, outdir: str | os.PathLike) -> dict[str, Path]:
    """The contract files acquire() writes for these settings."""
    outdir = Path(outdir)
    names = [n for n in FILES if not n.startswith("s1_") and n != "stations"]
    if sentinel1_enabled(cfg["sentinel1"]):
        names += ["s1_vv", "s1_vh"]
    elif cfg["sentinel1"]["enabled"] == "auto":
        log.info("Sentinel-1 off: acquire.sentinel1.enabled is auto and %s is not set", KEY_ENV)
    if cfg["ismn"]["path"] or cfg["ismn"]["url"]:
        names.append("stations")
    return {name: outdir / FILES[name] for name in names}


def run_source(source: str, cfg: dict, out: dict[str, str | os.PathLike], http: Downloader | None = None) -> dict[str, Path]:
    """Run one source ('smap', 'sentinel2', 'dem', 'soil', 'sentinel1', 'ismn') writing the given outputs."""
    region = region_of(cfg)
    http = http or downloader(cfg)
    if source == "smap":
        return acquire_smap(region, cfg, http, out["coarse_surface"], out["coarse_rootzone"], out["precipitation"])
    if source == "sentinel2":
        return acquire_sentinel2(region, cfg, http, out["ndvi"], out["ndwi"])
    if source == "dem":
        return acquire_dem(region, cfg, http, out["dem"])
    if source == "soil":
        return acquire_soil(region, cfg, http, {k: v for k, v in out.items() if k.startswith(("sand", "clay"))})
    if source == "sentinel1":
        return acquire_sentinel1(region, cfg, http, out["s1_vv"], out["s1_vh"])
    if source == "ismn":
        return acquire_ismn(region, cfg, http, out["stations"])
    raise InputError(f"unknown acquire source {source!r}")


SOURCES = {
    "smap": ("coarse_surface", "coarse_rootzone", "precipitation"),
    "sentinel2": ("ndvi", "ndwi"),
    "dem": ("dem",),
    "soil": ("sand", "clay", "sand_rootzone", "clay_rootzone"),
    "sentinel1": ("s1_vv", "s1_vh"),
    "ismn": ("stations",),
}


def acquire(config: dict, outdir: str | os.PathLike) -> dict[str, Path]:
    """Download every configured source (config['acquire'], the schema's defaults for the keys it leaves out) and
    write the contract files into outdir; {name: path}."""
    cfg = settings(config)
    region_of(cfg)
    http = downloader(cfg)
    targets = outputs_for(cfg, outdir)
    written: dict[str, Path] = {}
    for source, names in SOURCES.items():
        out = {n: targets[n] for n in names if n in targets}
        if out:
            log.info("acquire: %s", source)
            written.update(run_source(source, cfg, out, http))
    return written


def contract_inputs(paths: dict[str, str | os.PathLike]) -> dict:
    """The config `inputs:` mapping for written files (predictors: precipitation, ndvi, ndwi, dem, sand, clay, s1_*)."""
    inputs: dict = {"coarse": {"surface": str(paths["coarse_surface"])}, "predictors": {}}
    if "coarse_rootzone" in paths:
        inputs["coarse"]["rootzone"] = str(paths["coarse_rootzone"])
    for name in ("precipitation", "ndvi", "ndwi", "dem", "sand", "clay", "s1_vv", "s1_vh"):
        if name in paths:
            inputs["predictors"][name] = str(paths[name])
    if "stations" in paths:
        inputs["stations"] = str(paths["stations"])
    return inputs


# The acquire.* keys each source reads (besides the region, cache and HTTP keys every source reads):
# the rules hand exactly these to their jobs as params, so a change reruns the jobs it touches.
COMMON_KEYS = ("bbox", "start", "end", "cache_dir", "http")
SOURCE_KEYS = {"smap": ("earthdata", "smap"), "sentinel2": ("sentinel2",), "dem": ("dem",), "soil": ("soil",),
               "sentinel1": ("sentinel1",), "ismn": ("ismn",)}


def _sorted(value):
    """Mappings with their keys sorted, recursively: Snakemake compares params as written, so the order of the
    keys in a config file must not matter."""
    if isinstance(value, dict):
        return {key: _sorted(value[key]) for key in sorted(value)}
    if isinstance(value, list | tuple):
        return [_sorted(v) for v in value]
    return value


def params_for(source: str, acquire_config: dict) -> dict:
    """The slice of the validated config['acquire'] the source's job reads (a rule's `params: acquire=...`), keys
    sorted. Every key is there once the config is validated; a missing one raises KeyError (no default here)."""
    return _sorted({key: acquire_config[key] for key in (*COMMON_KEYS, *SOURCE_KEYS[source])})


def run_script(snakemake, source: str) -> None:
    """Entry for workflow/scripts/acquire_<source>.py: settings from snakemake.params.acquire (the rule's slice of
    the validated config['acquire'], every key there with its value or the schema's default; never
    snakemake.config), log to snakemake.log[0], write snakemake.output."""
    from smdown.jobs import setup_logging

    setup_logging(snakemake.log[0] if snakemake.log else None)
    cfg = dict(snakemake.params.acquire)
    named = dict(snakemake.output.items())
    run_source(source, cfg, {name: named[name] for name in SOURCES[source] if name in named})

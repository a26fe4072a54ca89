"""Snakemake entry: acquire sentinel2 -> named outputs ndvi, ndwi (settings: the rule's params.acquire)."""

from smdown.acquire import run_script

run_script(snakemake, "sentinel2")

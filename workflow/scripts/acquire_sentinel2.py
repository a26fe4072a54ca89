"""Snakemake entry: acquire sentinel2 -> named outputs ndvi, ndwi (settings from config['acquire'])."""

from smdown.acquire import run_script

run_script(snakemake, "sentinel2")

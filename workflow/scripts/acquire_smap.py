"""Snakemake entry: acquire smap -> named outputs coarse_surface, coarse_rootzone, precipitation (settings from config['acquire'])."""

from smdown.acquire import run_script

run_script(snakemake, "smap")

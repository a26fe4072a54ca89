"""Snakemake entry: acquire smap -> named outputs coarse_surface, coarse_rootzone, precipitation (settings: the rule's params.acquire)."""

from smdown.acquire import run_script

run_script(snakemake, "smap")

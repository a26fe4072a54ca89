"""Snakemake entry: acquire dem -> named outputs dem (settings: the rule's params.acquire)."""

from smdown.acquire import run_script

run_script(snakemake, "dem")

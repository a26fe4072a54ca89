"""Snakemake entry: acquire soil -> named outputs sand, clay (and optionally sand_rootzone, clay_rootzone) (settings: the rule's params.acquire)."""

from smdown.acquire import run_script

run_script(snakemake, "soil")

"""Snakemake entry: acquire soil -> named outputs sand, clay (and optionally sand_rootzone, clay_rootzone) (settings from config['acquire'])."""

from smdown.acquire import run_script

run_script(snakemake, "soil")

"""Snakemake entry: acquire dem -> named outputs dem (settings from config['acquire'])."""

from smdown.acquire import run_script

run_script(snakemake, "dem")

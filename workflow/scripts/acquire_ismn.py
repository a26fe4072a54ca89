"""Snakemake entry: acquire ismn -> named outputs stations (settings from config['acquire'])."""

from smdown.acquire import run_script

run_script(snakemake, "ismn")

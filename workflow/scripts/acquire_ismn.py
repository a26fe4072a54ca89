"""Snakemake entry: acquire ismn -> named outputs stations (settings: the rule's params.acquire)."""

from smdown.acquire import run_script

run_script(snakemake, "ismn")

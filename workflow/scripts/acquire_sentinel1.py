"""Snakemake entry: acquire sentinel1 -> named outputs s1_vv, s1_vh (settings: the rule's params.acquire)."""

from smdown.acquire import run_script

run_script(snakemake, "sentinel1")

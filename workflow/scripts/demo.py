"""Snakemake entry: build the demo world from params.demo and write its data-contract files."""

import logging
from pathlib import Path

from smdown.jobs import setup_logging
from smdown.preparing.demo import make_world, write_world

setup_logging(snakemake.log[0])
log = logging.getLogger("smdown.preparing.demo")
first = Path(snakemake.output[0])
outdir = first.parent if first.suffix in (".tif", ".csv") else first
log.info("demo world %s -> %s", dict(snakemake.params.demo), outdir)
world = make_world(dict(snakemake.params.demo))
paths = write_world(world, outdir)
log.info("wrote %s", ", ".join(str(p) for p in paths.values()))

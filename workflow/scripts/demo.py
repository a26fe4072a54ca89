"""Snakemake entry: build the demo world from config["demo"] and write its data-contract files."""

import logging
from pathlib import Path

from smdown.demo import make_world, write_world

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
first = Path(snakemake.output[0])
outdir = first.parent if first.suffix in (".tif", ".csv") else first
logging.info("demo world %s -> %s", snakemake.config["demo"], outdir)
world = make_world(dict(snakemake.config["demo"]))
paths = write_world(world, outdir)
logging.info("wrote %s", ", ".join(str(p) for p in paths.values()))

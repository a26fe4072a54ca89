from smdown.jobs import setup_logging
from smdown.preparing.prepare_steps import terrain

setup_logging(snakemake.log[0])
outputs = {path.rsplit("/", 1)[-1].removesuffix(".tif"): path for path in snakemake.output}
terrain(snakemake.input.dem, outputs, snakemake.params.names)

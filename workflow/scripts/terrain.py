from smdown.rules import setup_logging
from smdown.rules.resample import terrain

setup_logging(snakemake.log[0])
outputs = {path.rsplit("/", 1)[-1].removesuffix(".tif"): path for path in snakemake.output}
terrain(snakemake.input.dem, outputs, snakemake.params.names)

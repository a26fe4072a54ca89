from smdown.jobs import setup_logging
from smdown.preparing.prepare_steps import split

setup_logging(snakemake.log[0])
split(list(snakemake.input.coarse), snakemake.output[0], snakemake.params.split, snakemake.params.seed)

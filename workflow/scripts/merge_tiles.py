from smdown.jobs import setup_logging
from smdown.mapping.map_steps import merge_tiles

setup_logging(snakemake.log[0])
merge_tiles(list(snakemake.input), snakemake.output[0])

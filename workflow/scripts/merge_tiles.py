from smdown.rules import setup_logging
from smdown.rules.merge import merge_tiles

setup_logging(snakemake.log[0])
merge_tiles(list(snakemake.input), snakemake.output[0])

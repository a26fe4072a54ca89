from smdown.rules import setup_logging
from smdown.rules.evaluate import copy_baseline

setup_logging(snakemake.log[0])
copy_baseline(snakemake.input[0], snakemake.output[0])

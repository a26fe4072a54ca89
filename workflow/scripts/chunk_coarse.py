from smdown.chunks import extract_days
from smdown.jobs import setup_logging

setup_logging(snakemake.log[0])
extract_days(snakemake.input.source, snakemake.params.days, snakemake.output[0])

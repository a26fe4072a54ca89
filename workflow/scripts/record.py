from smdown.chunks import write_record
from smdown.jobs import setup_logging

setup_logging(snakemake.log[0])
write_record(list(snakemake.input), snakemake.output[0])

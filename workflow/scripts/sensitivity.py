from smdown import postprocess
from smdown.steps import setup_logging

setup_logging(snakemake.log[0])
postprocess.sensitivity(
    snakemake.wildcards.layer,
    list(snakemake.input.models),
    list(snakemake.input.samples),
    dict(snakemake.output.items()),
    snakemake.config,
)

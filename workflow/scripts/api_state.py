from smdown.jobs import setup_logging
from smdown.preparing.prepare_steps import api_state

setup_logging(snakemake.log[0])
api_state(
    snakemake.input.precipitation,
    snakemake.input.previous or None,
    snakemake.params.days,
    snakemake.params.decays,
    snakemake.output[0],
)

from smdown.evaluating.applicability_scores import applicability
from smdown.jobs import setup_logging

setup_logging(snakemake.log[0])
applicability(
    snakemake.params.layers,
    snakemake.input.truth,
    snakemake.input.aoa,
    snakemake.input.meta,
    snakemake.input.maps,
    snakemake.params.map_layers,
    snakemake.params.methods,
    snakemake.input.coarse,
    snakemake.input.split,
    snakemake.output[0],
)

from smdown.jobs import setup_logging
from smdown.mapping.applicability_steps import reference

setup_logging(snakemake.log[0])
reference(
    snakemake.input.samples,
    snakemake.input.importance or None,
    {"points": snakemake.output.points, "meta": snakemake.output.meta},
    snakemake.params.aoa,
    snakemake.params.seed,
)

from smdown.jobs import setup_logging
from smdown.publishing import publish_steps as step

setup_logging(snakemake.log[0])
step.cube(
    list(snakemake.input.maps),
    names=snakemake.params.names,
    output=snakemake.output[0],
    layer=snakemake.wildcards.layer,
    dtype=snakemake.params.dtype,
    run=snakemake.params.run,
)

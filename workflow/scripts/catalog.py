from smdown.jobs import setup_logging
from smdown.publishing import publish_steps as step

setup_logging(snakemake.log[0])
step.catalog(
    list(snakemake.input.maps),
    layers=snakemake.params.layers,
    names=snakemake.params.names,
    cubes=list(snakemake.input.cubes),
    cube_layers=snakemake.params.cube_layers,
    output=snakemake.output[0],
    run=snakemake.params.run,
    dtype=snakemake.params.dtype,
)

from smdown import steps

steps.setup_logging(snakemake.log[0])
rasters = {name: snakemake.input[name] for name in snakemake.params.rasters}
steps.samples(
    rasters,
    snakemake.input.target,
    snakemake.input.split,
    snakemake.input.coarse,
    snakemake.wildcards.scale,
    snakemake.output[0],
    snakemake.config,
    snakemake.params.seed_offset,
)

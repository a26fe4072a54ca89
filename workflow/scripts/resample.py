from smdown import steps

steps.setup_logging(snakemake.log[0])
steps.resample_one(
    snakemake.input.source,
    snakemake.input.coarse,
    snakemake.output[0],
    snakemake.wildcards.scale,
    static=snakemake.params.static,
    is_target=snakemake.params.is_target,
    max_gap=snakemake.params.max_gap,
)

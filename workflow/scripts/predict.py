from smdown import steps

steps.setup_logging(snakemake.log[0])
steps.use_threads(snakemake.threads)
rasters = {name: snakemake.input[name] for name in snakemake.params.rasters}
outputs = {name: path for name, path in snakemake.output.items()}
steps.predict(
    list(snakemake.input.models),
    snakemake.input.weights,
    rasters,
    snakemake.input.coarse,
    snakemake.params.scale,
    outputs,
    snakemake.config,
)

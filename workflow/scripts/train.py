from smdown import steps

steps.setup_logging(snakemake.log[0])
steps.use_threads(snakemake.threads)
steps.train(
    snakemake.wildcards.get("model", "rf"),
    list(snakemake.input),
    snakemake.output.model,
    snakemake.output.meta,
    snakemake.output.get("history"),
    snakemake.config,
    snakemake.params.seed_offset,
)

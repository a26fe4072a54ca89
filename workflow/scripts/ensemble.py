from smdown import steps

steps.setup_logging(snakemake.log[0])
steps.ensemble(list(snakemake.input.models), list(snakemake.input.samples), snakemake.output[0], snakemake.config)

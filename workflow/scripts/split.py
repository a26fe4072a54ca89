from smdown import steps

steps.setup_logging(snakemake.log[0])
steps.split(list(snakemake.input.coarse), snakemake.output[0], snakemake.config)

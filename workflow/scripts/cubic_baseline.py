from smdown import steps

steps.setup_logging(snakemake.log[0])
steps.copy_baseline(snakemake.input[0], snakemake.output[0])

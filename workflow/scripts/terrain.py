from smdown import steps

steps.setup_logging(snakemake.log[0])
outputs = {path.rsplit("/", 1)[-1].removesuffix(".tif"): path for path in snakemake.output}
steps.terrain(snakemake.input.dem, outputs, snakemake.params.names)

from smdown.jobs import mosaic, setup_logging

setup_logging(snakemake.log[0])
mosaic(list(snakemake.input.tiles), snakemake.output[0], days=dict(snakemake.params.items()).get("days"))

from smdown.evaluating.evaluate_steps import cubic_baselines
from smdown.jobs import setup_logging

setup_logging(snakemake.log[0])
cubic_baselines(
    snakemake.input.cubic,
    snakemake.input.coarse,
    dict(snakemake.output.items()),
    correction=snakemake.params.correction,
    anchor=snakemake.params.anchor,
    block_cells=snakemake.params.block_cells,
    tile=snakemake.params.tile,
)

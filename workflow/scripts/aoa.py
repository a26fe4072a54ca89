from smdown.jobs import setup_logging
from smdown.mapping.applicability_steps import aoa_map

setup_logging(snakemake.log[0])
aoa_map(
    snakemake.input.points,
    snakemake.input.meta,
    {name: snakemake.input[name] for name in snakemake.params.rasters},
    snakemake.input.coarse,
    snakemake.params.scale,
    snakemake.output.aoa,
    snakemake.params.model_inputs,
    snakemake.params.tile,
    snakemake.params.block_cells,
    threads=snakemake.threads,
    api_start=snakemake.params.api_start,
)

from smdown import io
from smdown.jobs import setup_logging
from smdown.mapping.refine_steps import read_refinement, refine_map

setup_logging(snakemake.log[0])
refine_map(
    read_refinement(snakemake.input.refinement),
    snakemake.input.ensemble,
    {name: snakemake.input[name] for name in snakemake.params.rasters},
    io.nest(io.read_grid(snakemake.input.ensemble), io.read_grid(snakemake.input.coarse)),
    snakemake.output.ensemble,
    tile=snakemake.params.tile,
    valid_range=tuple(snakemake.params.valid_range),
)

from smdown.jobs import setup_logging
from smdown.mapping.refine_steps import fit_refinement

setup_logging(snakemake.log[0])
fit_refinement(
    snakemake.wildcards.layer,
    snakemake.input.ensemble,
    {name: snakemake.input[name] for name in snakemake.params.rasters},
    snakemake.input.coarse,
    snakemake.input.split,
    snakemake.input.stations,
    snakemake.output.refinement,
    settings=snakemake.params.refine,
    held_out=snakemake.output.held_out,
)

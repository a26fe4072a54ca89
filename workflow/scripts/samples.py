from smdown.jobs import setup_logging
from smdown.preparing.prepare_steps import samples

setup_logging(snakemake.log[0])
samples(
    {name: snakemake.input[name] for name in snakemake.params.rasters},
    snakemake.input.target,
    snakemake.input.split,
    snakemake.input.coarse,
    snakemake.wildcards.scale,
    snakemake.output[0],
    features=snakemake.params.features,
    settings=snakemake.params.samples,
    seed=snakemake.params.seed,
)

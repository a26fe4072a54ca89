from smdown.jobs import setup_logging
from smdown.preparing.prepare_steps import resample_one

setup_logging(snakemake.log[0])
resample_one(
    snakemake.input.source,
    snakemake.params.coarse,
    snakemake.output[0],
    snakemake.params.scale,
    static=snakemake.params.static,
    is_target=snakemake.params.is_target,
    max_gap=snakemake.params.max_gap,
    tile=snakemake.params.tile,
)

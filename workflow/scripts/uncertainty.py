from smdown.jobs import setup_logging
from smdown.mapping.uncertainty_steps import read_calibration, uncertainty_map

setup_logging(snakemake.log[0])
uncertainty_map(
    read_calibration(snakemake.input.model),
    snakemake.input.ensemble,
    snakemake.input.spread,
    snakemake.input.coarse,
    snakemake.output.uncertainty,
    snakemake.params.detail_window,
    # the 30 m maps a learned error model reads: the coarse field, the predictors (read only when it has one)
    rasters={"coarse": snakemake.input.anchor, **{name: snakemake.input[name] for name in snakemake.params.rasters}},
    tile=snakemake.params.tile,
)

from smdown.jobs import setup_logging
from smdown.mapping.uncertainty_steps import calibrate_layer

setup_logging(snakemake.log[0])
calibrate_layer(
    snakemake.wildcards.layer,
    snakemake.input.ensemble,
    snakemake.input.spread,
    snakemake.input.weights,
    snakemake.input.coarse,
    snakemake.input.split,
    snakemake.input.stations or None,
    snakemake.output.calibration,
    snakemake.output.model,
    settings=snakemake.params.uncertainty,
    # the 30 m maps a learned error model reads (uncertainty.station_fit learned): the coarse field, the predictors
    rasters={"coarse": snakemake.input.anchor, **{name: snakemake.input[name] for name in snakemake.params.rasters}},
    held_out=snakemake.input.held_out or None,
)

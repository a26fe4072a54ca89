from smdown.rules import setup_logging
from smdown.rules.uncertainty import uncertainty

setup_logging(snakemake.log[0])
uncertainty(
    snakemake.wildcards.layer,
    snakemake.input.ensemble,
    snakemake.input.spread,
    snakemake.input.weights,
    snakemake.input.coarse,
    snakemake.input.split,
    snakemake.input.stations or None,
    snakemake.output.uncertainty,
    snakemake.output.calibration,
    settings=snakemake.params.uncertainty,
)

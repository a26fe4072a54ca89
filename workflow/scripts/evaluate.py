from smdown import postprocess
from smdown.steps import setup_logging

setup_logging(snakemake.log[0])
postprocess.evaluate(
    list(snakemake.input.downscaled),
    coarse=dict(zip(snakemake.params.layers, snakemake.input.coarse, strict=True)),
    truth=dict(zip(snakemake.params.truth_layers, snakemake.input.truth, strict=True)),
    stations=snakemake.input.stations or None,
    split_path=snakemake.input.split,
    outputs=dict(snakemake.output.items()),
    seed=snakemake.params.seed,
)

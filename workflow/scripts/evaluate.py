from smdown.evaluating import evaluate_steps as step
from smdown.jobs import setup_logging

setup_logging(snakemake.log[0])
step.evaluate(
    list(snakemake.input.downscaled),
    coarse=dict(zip(snakemake.params.layers, snakemake.input.coarse, strict=True)),
    truth=dict(zip(snakemake.params.truth_layers, snakemake.input.truth, strict=True)),
    stations=snakemake.input.stations or None,
    split_path=snakemake.input.split,
    outputs=dict(snakemake.output.items()),
    tiles=list(snakemake.input.tiles),
    seed=snakemake.params.seed,
)

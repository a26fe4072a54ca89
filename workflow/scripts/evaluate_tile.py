from smdown.evaluating import evaluate_steps as step
from smdown.jobs import setup_logging

setup_logging(snakemake.log[0])
step.evaluate_tile(
    list(snakemake.input.downscaled),
    coarse=snakemake.input.coarse,
    truth=snakemake.input.truth[0] if snakemake.input.truth else None,
    split_path=snakemake.input.split,
    tile=snakemake.params.tile,
    output=snakemake.output[0],
    seed=snakemake.params.seed,
    layer=snakemake.wildcards.layer,
)

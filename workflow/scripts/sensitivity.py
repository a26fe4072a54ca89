from smdown.jobs import setup_logging
from smdown.learning.learn_steps import sensitivity
from smdown.learning.models import use_threads

setup_logging(snakemake.log[0])
use_threads(snakemake.threads)
sensitivity(
    snakemake.wildcards.layer,
    list(snakemake.input.models),
    list(snakemake.input.samples),
    dict(snakemake.output.items()),
    settings=snakemake.params.sensitivity,
    model_inputs=snakemake.params.model_inputs,
    seed=snakemake.params.seed,
    threads=snakemake.threads,
)

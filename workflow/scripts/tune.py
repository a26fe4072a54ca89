from smdown.jobs import setup_logging
from smdown.learning.learn_steps import tune_member
from smdown.learning.models import use_threads

setup_logging(snakemake.log[0])
use_threads(snakemake.threads)
tune_member(
    snakemake.wildcards.model,
    list(snakemake.input),
    snakemake.output[0],
    hp=snakemake.params.hp,
    settings=snakemake.params.tune,
    model_inputs=snakemake.params.model_inputs,
    seed=snakemake.params.seed,
)

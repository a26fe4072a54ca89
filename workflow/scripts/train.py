from smdown.jobs import setup_logging
from smdown.learning.learn_steps import fit_member
from smdown.learning.models import use_threads

setup_logging(snakemake.log[0])
use_threads(snakemake.threads)
fit_member(
    snakemake.wildcards.model,
    list(snakemake.input.samples),
    dict(snakemake.output.items()),
    hp=snakemake.params.hp,
    model_inputs=snakemake.params.model_inputs,
    seed=snakemake.params.seed,
    tuned=snakemake.input.tuned or None,
)

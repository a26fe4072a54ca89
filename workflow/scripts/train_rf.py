from smdown.jobs import setup_logging
from smdown.learning.learn_steps import fit_rf
from smdown.learning.models import use_threads

setup_logging(snakemake.log[0])
use_threads(snakemake.threads)
fit_rf(
    list(snakemake.input),
    dict(snakemake.output.items()),
    settings=snakemake.params.rf,
    model_inputs=snakemake.params.model_inputs,
    seed=snakemake.params.seed,
    threads=snakemake.threads,
)

from smdown.jobs import setup_logging, use_threads
from smdown.learning.learn_steps import fit_rf

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

from smdown.jobs import setup_logging
from smdown.learning.learn_steps import weigh
from smdown.learning.models import use_threads

setup_logging(snakemake.log[0])
use_threads(snakemake.threads)
weigh(
    list(snakemake.input.models),
    list(snakemake.input.samples),
    snakemake.output[0],
    weighting=snakemake.params.weighting,
    forest=snakemake.params.forest,
    model_inputs=snakemake.params.model_inputs,
    tuned_paths=list(snakemake.input.tuned),
    threads=snakemake.threads,
)

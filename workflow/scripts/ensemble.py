from smdown.rules import setup_logging
from smdown.rules.ensemble import weigh

setup_logging(snakemake.log[0])
weigh(
    list(snakemake.input.models),
    list(snakemake.input.samples),
    snakemake.output[0],
    weighting=snakemake.params.weighting,
    forest=snakemake.params.forest,
    model_inputs=snakemake.params.model_inputs,
    tuned_paths=list(snakemake.input.tuned),
)

from smdown.rules import setup_logging
from smdown.rules.sensitivity import sensitivity

setup_logging(snakemake.log[0])
sensitivity(
    snakemake.wildcards.layer,
    list(snakemake.input.models),
    list(snakemake.input.samples),
    dict(snakemake.output.items()),
    settings=snakemake.params.sensitivity,
    model_inputs=snakemake.params.model_inputs,
    seed=snakemake.params.seed,
)

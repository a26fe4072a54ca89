from smdown.jobs import setup_logging
from smdown.mapping.map_steps import predict_rf

setup_logging(snakemake.log[0])
predict_rf(
    snakemake.input.model,
    {name: snakemake.input[name] for name in snakemake.params.rasters},
    snakemake.input.coarse,
    snakemake.input.anchor,
    snakemake.params.scale,
    snakemake.output.rf,
    settings=snakemake.params.predict,
    model_inputs=snakemake.params.model_inputs,
    threads=snakemake.threads,
    api_start=snakemake.params.api_start,
    tile=snakemake.params.tile,
)

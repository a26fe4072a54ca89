from smdown.jobs import setup_logging
from smdown.learning.models import use_threads
from smdown.mapping.map_steps import predict

setup_logging(snakemake.log[0])
use_threads(snakemake.threads)
predict(
    list(snakemake.input.models),
    snakemake.input.weights,
    {name: snakemake.input[name] for name in snakemake.params.rasters},
    snakemake.input.coarse,
    snakemake.input.anchor,
    snakemake.params.scale,
    {name: path for name, path in snakemake.output.items()},
    settings=snakemake.params.predict,
    model_inputs=snakemake.params.model_inputs,
    tile=snakemake.params.tile,
    threads=snakemake.threads,
    api_start=snakemake.params.api_start,
    detail=(snakemake.input.detail, snakemake.params.detail) if snakemake.params.detail else None,
)

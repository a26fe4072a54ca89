from smdown.evaluating import evaluate_steps as step
from smdown.jobs import setup_logging

setup_logging(snakemake.log[0])
rule, layer = snakemake.rule, snakemake.wildcards.get("layer")
if rule == "maps":
    truth = dict(zip(snakemake.params.truth_layers, snakemake.input.truth, strict=True))
    step.maps_figure(layer, snakemake.input.ensemble, snakemake.input.uncertainty, snakemake.input.coarse,
                     truth.get(layer), snakemake.input.split, snakemake.input.series, snakemake.output[0],
                     snakemake.params.map_days)
elif rule == "scatter":
    step.scatter_figure(snakemake.input[0], layer, snakemake.wildcards.reference, snakemake.output[0])
elif rule == "station_figure":
    step.station_figure(snakemake.input[0], layer, snakemake.output[0])
elif rule == "training_figure":
    step.training_figure(list(snakemake.input), layer, snakemake.output[0])
elif rule == "reliability_figure":
    step.reliability_figure(snakemake.input.reliability, snakemake.input.uncertainty, snakemake.output[0])
elif rule == "sensitivity_figure":
    step.sensitivity_figure(snakemake.input.importance, snakemake.input.response, layer, snakemake.output[0])
elif rule == "metric_figure":
    step.metric_figure(snakemake.input[0], snakemake.output[0])
else:
    raise ValueError(f"figures.py: no figure for rule {rule!r}")

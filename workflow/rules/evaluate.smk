# Evaluation against truth, stations and the coarse input (DESIGN step 7), and its figures.

REFERENCES = (
    (["truth"] if INPUTS.truth else [])
    + (["stations"] if INPUTS.stations else [])
    + ["coarse"]
)
TRUTH_LAYERS = [layer for layer in LAYERS if layer in INPUTS.truth]
# the maps scored against the references (the spreads are scored as uncertainties)
EVALUATED_MAPS = (
    MEMBERS
    + ["ensemble"]
    + (["ensemble_raw"] if REFINES else [])
    + ["rf", "cubic", "cubic_corrected"]
)
FIGURES = f"{R}/evaluation/figures"


rule cubic_baseline:
    input:
        cubic=fine_daily(CR, "coarse_{layer}"),
        coarse=coarse_input,
    output:
        cubic=tile_map("{layer}", "cubic"),
        cubic_corrected=tile_map("{layer}", "cubic_corrected"),
    log:
        f"{CR}/logs/cubic/{{layer}}/{{tile}}.log",
    benchmark:
        f"{CR}/benchmarks/cubic_baseline/{{layer}}/{{tile}}.tsv"
    conda:
        "../../envs/plot.yaml"
    resources:
        mem_mb=mem_mb_of("cubic_baseline"),
        runtime=runtime_of("cubic_baseline"),
    params:
        correction=config["predict"]["correction"],
        anchor=config["predict"]["anchor"],
        block_cells=config["predict"]["block_cells"],
        tile=tile_cells,
    script:
        "../scripts/cubic_baseline.py"


# the coarse check and the seams of one layer over one tile (the reads of every map), merged by rule evaluate
rule evaluate_tile:
    input:
        downscaled=scored_maps,
        coarse=coarse_input,
        truth=layer_truth,
        split=f"{R}/samples/split.json",
    output:
        f"{R}/evaluation/tiles/{{layer}}/{{tile}}.json",
    log:
        f"{R}/logs/evaluate_tile/{{layer}}/{{tile}}.log",
    benchmark:
        f"{R}/benchmarks/evaluate_tile/{{layer}}/{{tile}}.tsv"
    conda:
        "../../envs/plot.yaml"
    resources:
        mem_mb=mem_mb_of("evaluate_tile"),
        runtime=runtime_of("evaluate_tile"),
    params:
        tile=tile_cells,
        seed=config["seed"],
    script:
        "../scripts/evaluate_tile.py"


rule evaluate:
    input:
        tiles=expand(
            f"{R}/evaluation/tiles/{{layer}}/{{tile}}.json", layer=LAYERS, tile=TILES
        ),
        downscaled=scored_run_maps,
        split=f"{R}/samples/split.json",
        coarse=[INPUTS.coarse[layer] for layer in LAYERS],
        truth=[INPUTS.truth[layer] for layer in TRUTH_LAYERS],
        stations=INPUTS.stations or [],
    output:
        metrics=report(
            f"{R}/evaluation/metrics.csv",
            caption="../report/metrics.rst",
            category="Evaluation",
            subcategory="All layers",
        ),
        pairs=f"{R}/evaluation/pairs.csv",
        series=f"{R}/evaluation/station_series.csv",
        seams=f"{R}/evaluation/seams.csv",
        uncertainty=f"{R}/evaluation/uncertainty.csv",
        reliability=f"{R}/evaluation/reliability.csv",
        differences=f"{R}/evaluation/differences.csv",
    log:
        f"{R}/logs/evaluate.log",
    benchmark:
        f"{R}/benchmarks/evaluate.tsv"
    conda:
        "../../envs/plot.yaml"
    resources:
        mem_mb=mem_mb_of("evaluate"),
        runtime=runtime_of("evaluate"),
    params:
        layers=LAYERS,
        truth_layers=TRUTH_LAYERS,
        seed=config["seed"],
    script:
        "../scripts/evaluate.py"


rule maps:
    input:
        ensemble=lambda w: map_file(w.layer, "ensemble"),
        uncertainty=lambda w: map_file(w.layer, "uncertainty"),
        coarse=coarse_input,
        truth=[INPUTS.truth[layer] for layer in TRUTH_LAYERS],
        split=f"{R}/samples/split.json",
        series=f"{R}/evaluation/station_series.csv",
    output:
        report(
            f"{FIGURES}/{{layer}}_maps.png",
            caption="../report/maps.rst",
            category="Evaluation",
            subcategory="{layer}",
        ),
    log:
        f"{R}/logs/figures/{{layer}}_maps.log",
    benchmark:
        f"{R}/benchmarks/figures/{{layer}}_maps.tsv"
    conda:
        "../../envs/plot.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        truth_layers=TRUTH_LAYERS,
        map_days=config["evaluate"]["map_days"],
    script:
        "../scripts/figures.py"


rule scatter:
    input:
        f"{R}/evaluation/pairs.csv",
    output:
        report(
            f"{FIGURES}/{{layer}}_scatter_{{reference}}.png",
            caption="../report/scatter.rst",
            category="Evaluation",
            subcategory="{layer}",
        ),
    log:
        f"{R}/logs/figures/{{layer}}_scatter_{{reference}}.log",
    wildcard_constraints:
        reference="|".join(REFERENCES),
    conda:
        "../../envs/plot.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/figures.py"


rule station_figure:
    input:
        f"{R}/evaluation/station_series.csv",
    output:
        report(
            f"{FIGURES}/{{layer}}_stations.png",
            caption="../report/stations.rst",
            category="Evaluation",
            subcategory="{layer}",
        ),
    log:
        f"{R}/logs/figures/{{layer}}_stations.log",
    conda:
        "../../envs/plot.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/figures.py"


rule training_figure:
    input:
        expand(
            f"{MODELS_RUN}/models/{{{{layer}}}}/{{model}}_history.csv", model=MEMBERS
        ),
    output:
        report(
            f"{FIGURES}/{{layer}}_training.png",
            caption="../report/training.rst",
            category="Training",
            subcategory="{layer}",
        ),
    log:
        f"{R}/logs/figures/{{layer}}_training.log",
    conda:
        "../../envs/plot.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/figures.py"


rule reliability_figure:
    input:
        reliability=f"{R}/evaluation/reliability.csv",
        uncertainty=f"{R}/evaluation/uncertainty.csv",
    output:
        report(
            f"{FIGURES}/reliability.png",
            caption="../report/reliability.rst",
            category="Evaluation",
            subcategory="All layers",
        ),
    log:
        f"{R}/logs/figures/reliability.log",
    conda:
        "../../envs/plot.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/figures.py"


rule metric_figure:
    input:
        f"{R}/evaluation/metrics.csv",
    output:
        report(
            f"{FIGURES}/metrics.png",
            caption="../report/metrics.rst",
            category="Evaluation",
            subcategory="All layers",
        ),
    log:
        f"{R}/logs/figures/metrics.log",
    conda:
        "../../envs/plot.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/figures.py"

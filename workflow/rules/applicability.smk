# The area of applicability (smdown.mapping.applicability; Meyer & Pebesma 2021): where a pixel-day's predictors lie
# outside what the models learned. A layer's reference of training examples is written beside its weights by the
# run that trains (so a run applying it, config models.from, reuses it); the dissimilarity index is mapped one job a
# tile (merged by merge_tiles as downscaled/<layer>/aoa.tif), and the evaluation scores the maps inside and outside.

if AOA and not APPLIED:

    # the layer's training examples (split train) in the weighted, standardised predictor space, at most
    # aoa.examples of them, and the threshold cross-validation saw (ensemble/<layer>/aoa.json)
    rule aoa_reference:
        input:
            samples=layer_samples,
            importance=aoa_importance,
        output:
            points=f"{R}/ensemble/{{layer}}/aoa.npz",
            meta=f"{R}/ensemble/{{layer}}/aoa.json",
        log:
            f"{R}/logs/aoa_reference/{{layer}}.log",
        benchmark:
            f"{R}/benchmarks/aoa_reference/{{layer}}.tsv"
        conda:
            "../../envs/plot.yaml"
        resources:
            mem_mb=2000,
            runtime=10,
        params:
            aoa=AOA_SETTINGS,
            seed=layer_seed,
        script:
            "../scripts/aoa_reference.py"


if AOA:

    # the dissimilarity index of one tile's pixel-days (the reference of the run that trained the models), its
    # features derived from the finest scale's predictors as predict derives them; its memory and time follow
    # predict's (the same blocks of coarse cells, one KD-tree query a pixel-day instead of the members)
    rule aoa:
        input:
            unpack(fine_rasters),
            points=f"{MODELS_RUN}/ensemble/{{layer}}/aoa.npz",
            meta=f"{MODELS_RUN}/ensemble/{{layer}}/aoa.json",
            coarse=coarse_input,
            api_state=api_start_file,
        output:
            aoa=tile_map("{layer}", "aoa"),
        log:
            f"{CR}/logs/aoa/{{layer}}/{{tile}}.log",
        benchmark:
            f"{CR}/benchmarks/aoa/{{layer}}/{{tile}}.tsv"
        conda:
            "../../envs/plot.yaml"
        threads: 2
        resources:
            mem_mb=mem_mb_of("predict"),
            runtime=runtime_of("predict"),
        params:
            rasters=PREDICTOR_RASTERS,
            scale=FINE,
            model_inputs=MODEL_INPUTS,
            tile=tile_cells,
            block_cells=config["predict"]["block_cells"],
            api_start=api_start_of,
        script:
            "../scripts/aoa.py"


if applicability_layers():

    # each scored map's error against the truth inside and outside the area of applicability, on the test cells
    # and days (evaluation/applicability.csv)
    rule applicability:
        input:
            truth=[INPUTS.truth[layer] for layer in applicability_layers()],
            aoa=[map_file(layer, "aoa") for layer in applicability_layers()],
            meta=[
                f"{MODELS_RUN}/ensemble/{layer}/aoa.json"
                for layer in applicability_layers()
            ],
            maps=[path for _, _, path in applicability_maps()],
            coarse=INPUTS.coarse["surface"],
            split=f"{R}/samples/split.json",
        output:
            f"{R}/evaluation/applicability.csv",
        log:
            f"{R}/logs/applicability.log",
        conda:
            "../../envs/plot.yaml"
        resources:
            mem_mb=mem_mb_of("evaluate"),
            runtime=runtime_of("evaluate"),
        params:
            layers=applicability_layers(),
            map_layers=[layer for layer, _, _ in applicability_maps()],
            methods=[name for _, name, _ in applicability_maps()],
        script:
            "../scripts/applicability.py"

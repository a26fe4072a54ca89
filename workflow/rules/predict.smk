# the tiles of the region (common.smk: TILES), one job each for predict, predict_rf, cubic_baseline, resample_tile
wildcard_constraints:
    tile="|".join(TILES),


# one job per tile of coarse cells (config tiles.cells); rule merge_tiles writes each layer's maps from the tiles
rule predict:
    input:
        unpack(fine_rasters),
        models=ensemble_models,
        weights=f"{MODELS_RUN}/ensemble/{{layer}}/weights.csv",
        coarse=coarse_input,
        anchor=fine_daily(CR, "coarse_{layer}"),
        api_state=api_start_file,
        detail=detail_donor,
    output:
        **{name: tile_map("{layer}", predicted(name)) for name in PREDICT_MAPS},
    log:
        f"{CR}/logs/predict/{{layer}}/{{tile}}.log",
    benchmark:
        f"{CR}/benchmarks/predict/{{layer}}/{{tile}}.tsv"
    conda:
        "../../envs/ml.yaml"
    threads: 2
    resources:
        mem_mb=mem_mb_of("predict_forest" if FOREST_JOINS else "predict"),
        runtime=runtime_of("predict_forest" if FOREST_JOINS else "predict"),
    params:
        rasters=PREDICTOR_RASTERS,
        scale=FINE,
        predict=config["predict"],
        model_inputs=MODEL_INPUTS,
        tile=tile_cells,
        api_start=api_start_of,
        detail=detail_share,
    script:
        "../scripts/predict.py"


# the random-forest peer alone, in a job of its own, where it does not join the ensemble (ensemble.forest off);
# where it joins, predict writes its map beside the deep members'
if not FOREST_JOINS:

    rule predict_rf:
        input:
            unpack(fine_rasters),
            model=f"{MODELS_RUN}/models/{{layer}}/rf.joblib",
            coarse=coarse_input,
            anchor=fine_daily(CR, "coarse_{layer}"),
            api_state=api_start_file,
        output:
            rf=tile_map("{layer}", "rf"),
        log:
            f"{CR}/logs/predict_rf/{{layer}}/{{tile}}.log",
        benchmark:
            f"{CR}/benchmarks/predict_rf/{{layer}}/{{tile}}.tsv"
        conda:
            "../../envs/ml.yaml"
        threads: 2
        resources:
            mem_mb=mem_mb_of("predict_rf"),
            runtime=runtime_of("predict_rf"),
        params:
            rasters=PREDICTOR_RASTERS,
            scale=FINE,
            predict=config["predict"],
            model_inputs=MODEL_INPUTS,
            tile=tile_cells,
            api_start=api_start_of,
        script:
            "../scripts/predict_rf.py"


if MOSAIC == "cog":

    # a layer's written map (config outputs.maps: a member, the ensemble, its spread, the forest, the cubic
    # baselines) from its tiles, strip by strip, as a Cloud-Optimized GeoTIFF stored as outputs.dtype
    rule merge_tiles:
        input:
            tile_parts,
        output:
            f"{CR}/downscaled/{{layer}}/{{name}}.tif",
        log:
            f"{CR}/logs/merge_tiles/{{layer}}/{{name}}.log",
        benchmark:
            f"{CR}/benchmarks/merge_tiles/{{layer}}/{{name}}.tsv"
        wildcard_constraints:
            name="|".join(WRITTEN_MAPS),
        conda:
            "../../envs/gdal.yaml"
        threads: MERGE_THREADS
        resources:
            mem_mb=mem_mb_of("merge_tiles"),
            runtime=runtime_of("merge_tiles"),
        params:
            dtype=map_dtype,
            cog=True,
            days=chunk_days,
        script:
            "../scripts/merge_tiles.py"

else:

    # a layer's written map as a VRT over its tiles, which stay as the map's storage (outputs.mosaic vrt): seconds
    # a map, so the steps that read the map (refine, uncertainty, the evaluation) do not wait for a merge
    rule mosaic:
        input:
            tiles=tile_parts,
        output:
            f"{CR}/downscaled/{{layer}}/{{name}}.vrt",
        log:
            f"{CR}/logs/mosaic/{{layer}}/{{name}}.log",
        wildcard_constraints:
            name="|".join(WRITTEN_MAPS),
        conda:
            "../../envs/gdal.yaml"
        resources:
            mem_mb=1000,
            runtime=10,
        params:
            days=chunk_days,
        script:
            "../scripts/mosaic.py"


if NEEDED_MAPS and MOSAIC == "cog":

    # a map other rules read that the run does not write (common.smk: NEEDED_MAPS), merged as float32 into a
    # temporary file, removed once its readers are done; its params are merge_tiles' at float32, so a map that
    # leaves outputs.maps is not merged again (nor predicted again, its tiles gone)
    rule merge_needed:
        input:
            tile_parts,
        output:
            temp(f"{CR}/downscaled/{{layer}}/{{name}}.tif"),
        log:
            f"{CR}/logs/merge_tiles/{{layer}}/{{name}}.log",
        benchmark:
            f"{CR}/benchmarks/merge_tiles/{{layer}}/{{name}}.tsv"
        wildcard_constraints:
            name="|".join(NEEDED_MAPS),
        conda:
            "../../envs/gdal.yaml"
        threads: MERGE_THREADS
        resources:
            mem_mb=mem_mb_of("merge_tiles"),
            runtime=runtime_of("merge_tiles"),
        params:
            dtype="float32",
            cog=True,
            days=chunk_days,
        script:
            "../scripts/merge_tiles.py"

elif NEEDED_MAPS:

    # a map other rules read that the run does not write, as a temporary VRT over its kept tiles (outputs.mosaic
    # vrt): made again in seconds when a reader runs again
    rule mosaic_needed:
        input:
            tiles=tile_parts,
        output:
            temp(f"{CR}/downscaled/{{layer}}/{{name}}.vrt"),
        log:
            f"{CR}/logs/mosaic/{{layer}}/{{name}}.log",
        wildcard_constraints:
            name="|".join(NEEDED_MAPS),
        conda:
            "../../envs/gdal.yaml"
        resources:
            mem_mb=1000,
            runtime=10,
        params:
            days=chunk_days,
        script:
            "../scripts/mosaic.py"


if REFINES:

    # the stations' refinement of the ensemble's detail inside the cells (smdown.mapping.refine), one job a layer: after
    # predict, since its fit needs the ensemble at the stations' pixels
    rule fit_refinement:
        input:
            unpack(fine_rasters),
            ensemble=region_map(R, "ensemble_raw"),
            coarse=coarse_input,
            split=f"{R}/samples/split.json",
            stations=INPUTS.stations,
        output:
            refinement=f"{R}/ensemble/{{layer}}/refinement.json",
            held_out=f"{R}/ensemble/{{layer}}/refinement_held_out.csv",
        log:
            f"{R}/logs/fit_refinement/{{layer}}.log",
        benchmark:
            f"{R}/benchmarks/fit_refinement/{{layer}}.tsv"
        conda:
            "../../envs/plot.yaml"
        resources:
            mem_mb=mem_mb_of("fit_refinement"),
            runtime=runtime_of("fit_refinement"),
        params:
            refine=REFINE_SETTINGS,
            rasters=PREDICTOR_RASTERS,
        script:
            "../scripts/fit_refinement.py"

    # the refined ensemble, one job a tile from the merged ensemble_raw (a cell's anomaly needs only the cell; the
    # merged map, not the tile's temporary one, so a changed refinement does not rerun predict)
    rule refine:
        input:
            unpack(fine_rasters),
            ensemble=region_map(CR, "ensemble_raw"),
            refinement=f"{MODELS_RUN}/ensemble/{{layer}}/refinement.json",
            coarse=coarse_input,
        output:
            ensemble=tile_map("{layer}", "ensemble"),
        log:
            f"{CR}/logs/refine/{{layer}}/{{tile}}.log",
        benchmark:
            f"{CR}/benchmarks/refine/{{layer}}/{{tile}}.tsv"
        conda:
            "../../envs/plot.yaml"
        resources:
            mem_mb=mem_mb_of("refine"),
            runtime=runtime_of("refine"),
        params:
            rasters=PREDICTOR_RASTERS,
            tile=tile_cells,
            valid_range=config["predict"]["valid_range"],
        script:
            "../scripts/refine.py"


# the calibration of the ensemble's uncertainty (smdown.mapping.uncertainty), one job a layer: after predict, since its fit
# on stations needs the ensemble at the stations' pixels
rule calibrate_uncertainty:
    input:
        unpack(fine_rasters),
        anchor=fine_daily(R, "coarse_{layer}"),
        ensemble=region_map(R, "ensemble"),
        spread=region_map(R, "ensemble_std"),
        weights=f"{MODELS_RUN}/ensemble/{{layer}}/weights.csv",
        coarse=coarse_input,
        split=f"{R}/samples/split.json",
        stations=INPUTS.stations or [],
        held_out=held_out_of,
    output:
        calibration=f"{R}/ensemble/{{layer}}/calibration.csv",
        model=f"{R}/ensemble/{{layer}}/calibration.json",
    log:
        f"{R}/logs/calibrate_uncertainty/{{layer}}.log",
    benchmark:
        f"{R}/benchmarks/calibrate_uncertainty/{{layer}}.tsv"
    conda:
        "../../envs/plot.yaml"
    resources:
        mem_mb=mem_mb_of("calibrate_uncertainty"),
        runtime=runtime_of("calibrate_uncertainty"),
    params:
        uncertainty=config["uncertainty"],
        rasters=PREDICTOR_RASTERS,
    script:
        "../scripts/calibrate_uncertainty.py"


# the calibrated uncertainty map, one job a tile (merged by merge_tiles): the merged ensemble and spread read again
# with a halo across the tile's edges (the local detail), and the predictors where the calibration learned a model
rule uncertainty:
    input:
        unpack(fine_rasters),
        anchor=fine_daily(CR, "coarse_{layer}"),
        ensemble=region_map(CR, "ensemble"),
        spread=region_map(CR, "ensemble_std"),
        model=f"{MODELS_RUN}/ensemble/{{layer}}/calibration.json",
        coarse=coarse_input,
    output:
        uncertainty=tile_map("{layer}", "uncertainty"),
    log:
        f"{CR}/logs/uncertainty/{{layer}}/{{tile}}.log",
    benchmark:
        f"{CR}/benchmarks/uncertainty/{{layer}}/{{tile}}.tsv"
    conda:
        "../../envs/plot.yaml"
    resources:
        mem_mb=mem_mb_of("uncertainty"),
        runtime=runtime_of("uncertainty"),
    params:
        detail_window=config["uncertainty"]["detail_window"],
        rasters=PREDICTOR_RASTERS,
        tile=tile_cells,
    script:
        "../scripts/uncertainty.py"

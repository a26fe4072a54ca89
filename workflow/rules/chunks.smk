# Time chunks (config chunks, smdown.chunks): a run applying trained models maps its period one chunk of days at a time
# (the rules of the daily work under results/<run>/chunks/{chunk}/: resample_tile, merge_scale, predict, predict_rf,
# cubic_baseline, refine, uncertainty, aoa, merge_tiles), and each written map of the whole period is a VRT over its
# chunks. The raw inputs are read by digest of the days a chunk depends on, so new days rerun only their chunks.

if CHUNKED:

    # a coarse layer's days of a chunk's window (its lead-in days, then its own), read by digest of those days
    rule chunk_coarse:
        input:
            source=lambda wildcards: ancient(INPUTS.coarse[wildcards.layer]),
        output:
            f"{CR}/coarse_{{layer}}.tif",
        log:
            f"{CR}/logs/chunk_coarse/{{layer}}.log",
        conda:
            "../../envs/gdal.yaml"
        resources:
            mem_mb=1000,
            runtime=10,
        params:
            days=lambda wildcards: list(CHUNKS[wildcards.chunk].window),
            digest=coarse_digest,
        script:
            "../scripts/chunk_coarse.py"

    # the antecedent precipitation indices a time chunk carries into the next (on its last day), from the chunk's
    # precipitation at the finest scale and the indices the chunk before it carried
    if CARRIES_API:

        rule api_state:
            input:
                precipitation=lambda wildcards: fine_rasters(wildcards)["precipitation"],
                previous=api_start_file,
            output:
                f"{CR}/api_state_{{layer}}.tif",
            log:
                f"{CR}/logs/api_state/{{layer}}.log",
            conda:
                "../../envs/gdal.yaml"
            resources:
                mem_mb=2000,
                runtime=10,
            params:
                days=lambda wildcards: list(CHUNKS[wildcards.chunk].days),
                decays=config["derived"]["api_decay"],
            script:
                "../scripts/api_state.py"

    # a written map of the whole period: a VRT over its chunks' GeoTIFFs (GDAL, rasterio, QGIS and xarray's rasterio
    # engine read it as one raster, its bands dated)
    rule record:
        input:
            lambda wildcards: [
                region_map(f"{R}/chunks/{chunk}", wildcards.name, wildcards.layer)
                for chunk in CHUNKS
            ],
        output:
            f"{R}/downscaled/{{layer}}/{{name}}.vrt",
        log:
            f"{R}/logs/record/{{layer}}/{{name}}.log",
        wildcard_constraints:
            name="|".join(WRITTEN_MAPS),
        conda:
            "../../envs/gdal.yaml"
        resources:
            mem_mb=1000,
            runtime=10,
        script:
            "../scripts/record.py"

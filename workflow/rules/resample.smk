rule terrain:
    input:
        dem=INPUTS.predictors.get("dem", []),
    output:
        expand(f"{R}/derived/{{name}}.tif", name=TERRAIN),
    log:
        f"{R}/logs/terrain.log",
    benchmark:
        f"{R}/benchmarks/terrain.tsv"
    conda:
        "../../envs/gdal.yaml"
    resources:
        mem_mb=mem_mb_of("terrain"),
        runtime=runtime_of("terrain"),
    params:
        names=config["derived"]["terrain"],
    script:
        "../scripts/terrain.py"


rule resample:
    input:
        source=variable_source,
    output:
        f"{R}/scales/{{scale}}/{{var}}.tif",
    log:
        f"{R}/logs/resample/{{scale}}/{{var}}.log",
    benchmark:
        f"{R}/benchmarks/resample/{{scale}}/{{var}}.tsv"
    conda:
        "../../envs/gdal.yaml"
    resources:
        mem_mb=mem_mb_of("resample"),
        runtime=runtime_of("resample"),
    params:
        scale=scale_of,
        static=is_static,
        is_target=is_coarse_variable,
        max_gap=config["fill"]["max_gap_days"],
        tile=None,
        coarse=coarse_params,
    script:
        "../scripts/resample.py"


# the daily variables at the finest scale (the largest of all resample jobs): one job per tile, kept under a VRT
rule resample_tile:
    input:
        source=variable_source,
    output:
        f"{CR}/tiles/scales/{FINE}/{{var}}/{{tile}}.tif",
    log:
        f"{CR}/logs/resample/{FINE}/{{var}}/{{tile}}.log",
    benchmark:
        f"{CR}/benchmarks/resample/{FINE}/{{var}}/{{tile}}.tsv"
    wildcard_constraints:
        var="|".join(DAILY_VARIABLES),
    conda:
        "../../envs/gdal.yaml"
    resources:
        mem_mb=mem_mb_of("resample_tile"),
        runtime=runtime_of("resample_tile"),
    params:
        scale=FINE,
        static=False,
        is_target=is_coarse_variable,
        max_gap=config["fill"]["max_gap_days"],
        tile=tile_cells,
        coarse=coarse_params,
        digest=source_digest,
    script:
        "../scripts/resample.py"


# a daily variable on the finest grid: a VRT over its tiles (kept), read by the 30 m steps as one raster; no merge
rule mosaic_scale:
    input:
        tiles=scale_tile_parts,
    output:
        fine_daily(CR, "{var}"),
    log:
        f"{CR}/logs/mosaic_scale/{{var}}.log",
    wildcard_constraints:
        var="|".join(DAILY_VARIABLES),
    conda:
        "../../envs/gdal.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/mosaic.py"

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


# the daily variables at the finest scale (the largest of all resample jobs): one job per tile, merged
rule resample_tile:
    input:
        source=variable_source,
    output:
        temp(f"{CR}/tiles/scales/{FINE}/{{var}}/{{tile}}.tif"),
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


rule merge_scale:
    input:
        scale_tile_parts,
    output:
        f"{CR}/scales/{FINE}/{{var}}.tif",
    log:
        f"{CR}/logs/merge_scale/{{var}}.log",
    benchmark:
        f"{CR}/benchmarks/merge_scale/{{var}}.tsv"
    wildcard_constraints:
        var="|".join(DAILY_VARIABLES),
    conda:
        "../../envs/gdal.yaml"
    threads: MERGE_THREADS
    resources:
        mem_mb=mem_mb_of("merge_tiles"),
        runtime=runtime_of("merge_tiles"),
    script:
        "../scripts/merge_tiles.py"


ruleorder: merge_scale > resample

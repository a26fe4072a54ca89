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
        coarse=INPUTS.coarse["surface"],
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
        static=is_static,
        is_target=is_coarse_variable,
        max_gap=config["fill"]["max_gap_days"],
    script:
        "../scripts/resample.py"

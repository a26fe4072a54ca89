rule demo:
    output:
        coarse=expand(f"{RESOURCES}/coarse_{{layer}}.tif", layer=smcontract.LAYERS),
        truth=expand(f"{RESOURCES}/truth_{{layer}}.tif", layer=smcontract.LAYERS),
        predictors=expand(f"{RESOURCES}/{{name}}.tif", name=smconfig.DEMO_PREDICTORS),
        stations=f"{RESOURCES}/stations.csv",
    log:
        f"{RESOURCES}/logs/demo.log",
    benchmark:
        f"{RESOURCES}/logs/demo_benchmark.tsv"
    conda:
        "../../envs/gdal.yaml"
    resources:
        mem_mb=mem_mb_of("demo"),
        runtime=runtime_of("demo"),
    params:
        demo=config["demo"],
    script:
        "../scripts/demo.py"

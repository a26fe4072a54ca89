rule demo:
    output:
        coarse=expand("resources/demo/coarse_{layer}.tif", layer=smconfig.LAYERS),
        truth=expand("resources/demo/truth_{layer}.tif", layer=smconfig.LAYERS),
        predictors=expand("resources/demo/{name}.tif", name=smconfig.DEMO_PREDICTORS),
        stations="resources/demo/stations.csv",
    log:
        "resources/demo/logs/demo.log",
    benchmark:
        "resources/demo/logs/demo_benchmark.tsv"
    conda:
        "../../envs/gdal.yaml"
    resources:
        mem_mb=mem_mb_of("demo"),
        runtime=runtime_of("demo"),
    params:
        demo=config["demo"],
    script:
        "../scripts/demo.py"

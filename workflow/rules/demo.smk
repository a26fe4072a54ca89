rule demo:
    output:
        coarse=expand("resources/demo/coarse_{layer}.tif", layer=smconfig.LAYERS),
        truth=expand("resources/demo/truth_{layer}.tif", layer=smconfig.LAYERS),
        predictors=expand(
            "resources/demo/{name}.tif", name=smconfig.DEMO_PREDICTORS
        ),
        stations="resources/demo/stations.csv",
    params:
        demo=config["demo"],
    log:
        "logs/demo.log",
    benchmark:
        "benchmarks/demo.tsv"
    conda:
        "../../envs/gdal.yaml"
    resources:
        mem_mb=4000,
        runtime=20,
    script:
        "../scripts/demo.py"

rule predict:
    input:
        unpack(fine_rasters),
        models=layer_models,
        weights=f"{R}/ensemble/{{layer}}/weights.csv",
        coarse=coarse_input,
    output:
        **downscaled("{layer}"),
    log:
        f"{R}/logs/predict/{{layer}}.log",
    benchmark:
        f"{R}/benchmarks/predict/{{layer}}.tsv"
    conda:
        "../../envs/ml.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=240,
    params:
        rasters=PREDICTOR_RASTERS,
        scale=FINE,
    script:
        "../scripts/predict.py"


rule cubic_baseline:
    input:
        f"{R}/scales/{FINE}/coarse_{{layer}}.tif",
    output:
        f"{R}/downscaled/{{layer}}/cubic.tif",
    log:
        f"{R}/logs/cubic/{{layer}}.log",
    conda:
        "../../envs/gdal.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/cubic_baseline.py"

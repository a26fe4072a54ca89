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
        predict=config["predict"],
        model_inputs=MODEL_INPUTS,
    script:
        "../scripts/predict.py"

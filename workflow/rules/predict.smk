rule predict:
    input:
        unpack(fine_rasters),
        models=deep_models,
        weights=f"{R}/ensemble/{{layer}}/weights.csv",
        coarse=coarse_input,
    output:
        **ensemble_maps("{layer}"),
    log:
        f"{R}/logs/predict/{{layer}}.log",
    benchmark:
        f"{R}/benchmarks/predict/{{layer}}.tsv"
    conda:
        "../../envs/ml.yaml"
    threads: 2
    resources:
        mem_mb=mem_mb_of("predict"),
        runtime=runtime_of("predict"),
    params:
        rasters=PREDICTOR_RASTERS,
        scale=FINE,
        predict=config["predict"],
        model_inputs=MODEL_INPUTS,
    script:
        "../scripts/predict.py"


# the random-forest peer: a baseline that is evaluated, not part of the ensemble, so a job of its own
rule predict_rf:
    input:
        unpack(fine_rasters),
        model=f"{R}/models/{{layer}}/rf.joblib",
        coarse=coarse_input,
    output:
        rf=f"{R}/downscaled/{{layer}}/rf.tif",
    log:
        f"{R}/logs/predict/{{layer}}_rf.log",
    benchmark:
        f"{R}/benchmarks/predict/{{layer}}_rf.tsv"
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
    script:
        "../scripts/predict_rf.py"

rule predict:
    input:
        unpack(fine_rasters),
        models=deep_models,
        weights=f"{R}/ensemble/{{layer}}/weights.csv",
        coarse=coarse_input,
        anchor=f"{R}/scales/{FINE}/coarse_{{layer}}.tif",
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
        anchor=f"{R}/scales/{FINE}/coarse_{{layer}}.tif",
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


# the calibrated uncertainty of the ensemble (smdown.uncertainty): after predict, since its calibration on stations
# needs the ensemble at the stations' pixels
rule uncertainty:
    input:
        ensemble=f"{R}/downscaled/{{layer}}/ensemble.tif",
        spread=f"{R}/downscaled/{{layer}}/ensemble_std.tif",
        weights=f"{R}/ensemble/{{layer}}/weights.csv",
        coarse=coarse_input,
        split=f"{R}/samples/split.json",
        stations=INPUTS.stations or [],
    output:
        uncertainty=f"{R}/downscaled/{{layer}}/uncertainty.tif",
        calibration=f"{R}/ensemble/{{layer}}/calibration.csv",
    log:
        f"{R}/logs/uncertainty/{{layer}}.log",
    benchmark:
        f"{R}/benchmarks/uncertainty/{{layer}}.tsv"
    conda:
        "../../envs/plot.yaml"
    resources:
        mem_mb=mem_mb_of("uncertainty"),
        runtime=runtime_of("uncertainty"),
    params:
        uncertainty=config["uncertainty"],
    script:
        "../scripts/uncertainty.py"

rule ensemble:
    input:
        models=layer_models,
        samples=layer_samples,
    output:
        f"{R}/ensemble/{{layer}}/weights.csv",
    log:
        f"{R}/logs/ensemble/{{layer}}.log",
    conda:
        "../../envs/ml.yaml"
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        weighting=config["ensemble"]["weighting"],
        model_inputs=MODEL_INPUTS,
    script:
        "../scripts/ensemble.py"

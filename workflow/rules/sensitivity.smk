# Sensitivity of each layer's models to the predictors (DESIGN step 8).


rule sensitivity:
    input:
        models=layer_models,
        samples=layer_samples,
    output:
        importance=f"{R}/sensitivity/{{layer}}/importance.csv",
        response=f"{R}/sensitivity/{{layer}}/response.csv",
    log:
        f"{R}/logs/sensitivity/{{layer}}.log",
    benchmark:
        f"{R}/benchmarks/sensitivity/{{layer}}.tsv"
    conda:
        "../../envs/ml.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb_of("sensitivity"),
        runtime=runtime_of("sensitivity"),
    params:
        sensitivity=config["sensitivity"],
        model_inputs=MODEL_INPUTS,
        seed=config["seed"],
    script:
        "../scripts/sensitivity.py"


rule sensitivity_figure:
    input:
        importance=rules.sensitivity.output.importance,
        response=rules.sensitivity.output.response,
    output:
        report(
            f"{R}/sensitivity/{{layer}}/sensitivity.png",
            caption="../report/sensitivity.rst",
            category="Sensitivity",
            subcategory="{layer}",
        ),
    log:
        f"{R}/logs/figures/{{layer}}_sensitivity.log",
    conda:
        "../../envs/plot.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/figures.py"

# tune, train (and ensemble, sensitivity) run TensorFlow on one thread: their small models keep about one core busy
# whatever the threads (the demo's 6 train jobs: 155 s on 2 threads, 154 s on 1), so two jobs side by side finish
# the step in about half the time; `set-threads` gives them more on a bigger node
rule tune:
    input:
        layer_samples,
    output:
        f"{R}/models/{{layer}}/{{model}}_tuned.json",
    log:
        f"{R}/logs/tune/{{layer}}/{{model}}.log",
    benchmark:
        f"{R}/benchmarks/tune/{{layer}}/{{model}}.tsv"
    conda:
        "../../envs/ml.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb_of("tune"),
        runtime=runtime_of("tune"),
    params:
        hp=HYPER_PARAMETERS,
        tune=TUNE_SETTINGS,
        model_inputs=MODEL_INPUTS,
        seed=layer_seed,
    script:
        "../scripts/tune.py"


rule train:
    input:
        samples=layer_samples,
        tuned=tuned_parameters,
    output:
        model=f"{R}/models/{{layer}}/{{model}}.keras",
        meta=f"{R}/models/{{layer}}/{{model}}.json",
        history=f"{R}/models/{{layer}}/{{model}}_history.csv",
    log:
        f"{R}/logs/train/{{layer}}/{{model}}.log",
    benchmark:
        f"{R}/benchmarks/train/{{layer}}/{{model}}.tsv"
    conda:
        "../../envs/ml.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb_of("train"),
        runtime=runtime_of("train"),
    params:
        hp=HYPER_PARAMETERS,
        model_inputs=MODEL_INPUTS,
        seed=layer_seed,
    script:
        "../scripts/train.py"


rule train_rf:
    input:
        layer_samples,
    output:
        model=f"{R}/models/{{layer}}/rf.joblib",
        meta=f"{R}/models/{{layer}}/rf.json",
    log:
        f"{R}/logs/train/{{layer}}/rf.log",
    benchmark:
        f"{R}/benchmarks/train/{{layer}}/rf.tsv"
    conda:
        "../../envs/ml.yaml"
    threads: 2
    resources:
        mem_mb=mem_mb_of("train_rf"),
        runtime=runtime_of("train_rf"),
    params:
        rf=config["rf"],
        model_inputs=MODEL_INPUTS,
        seed=layer_seed,
    script:
        "../scripts/train_rf.py"

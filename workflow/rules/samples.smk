rule split:
    input:
        coarse=list(INPUTS.coarse.values()),
    output:
        f"{R}/samples/split.json",
    log:
        f"{R}/logs/split.log",
    conda:
        "../../envs/ml.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        split=SPLIT_SETTINGS,
        seed=config["seed"],
    script:
        "../scripts/split.py"


rule samples:
    input:
        unpack(sample_rasters),
        target=sample_target,
        split=f"{R}/samples/split.json",
        coarse=INPUTS.coarse["surface"],
    output:
        f"{R}/samples/{{layer}}/{{scale}}.npz",
    log:
        f"{R}/logs/samples/{{layer}}/{{scale}}.log",
    benchmark:
        f"{R}/benchmarks/samples/{{layer}}/{{scale}}.tsv"
    conda:
        "../../envs/ml.yaml"
    resources:
        mem_mb=mem_mb_of("samples"),
        runtime=runtime_of("samples"),
    params:
        rasters=PREDICTOR_RASTERS,
        features=FEATURES,
        samples=SAMPLE_SETTINGS,
        seed=layer_seed,
    script:
        "../scripts/samples.py"

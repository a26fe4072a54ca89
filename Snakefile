from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/resample.smk"
include: "workflow/rules/samples.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/ensemble.smk"
include: "workflow/rules/predict.smk"


rule all:
    input:
        all_outputs(),
    default_target: True

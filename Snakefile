from snakemake.utils import min_version

min_version("9.0")


# The demo's run (config/config.yaml) is the config only where none is given: a config of your own
# (--configfile mine.yaml) gets the schema's defaults for every key it does not set, never the demo's.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


if SOURCE == "demo":

    include: "workflow/rules/demo.smk"


if SOURCE == "earthdata":

    include: "workflow/rules/acquire.smk"


include: "workflow/rules/resample.smk"
include: "workflow/rules/samples.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/ensemble.smk"
include: "workflow/rules/predict.smk"
include: "workflow/rules/chunks.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/sensitivity.smk"
include: "workflow/rules/publish.smk"
include: "workflow/rules/applicability.smk"


rule all:
    default_target: True
    input:
        all_outputs(),

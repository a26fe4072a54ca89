# Real data for source: earthdata (settings under `acquire:`; see docs/acquire.md).
# Each rule writes contract files under resources/<run>/ through smdown.acquire. Each job gets
# the settings it reads as `params: acquire=` (its slice of the validated config["acquire"], every
# key there with the schema's default where the config leaves it out), so a change of the bbox,
# the dates or a source's settings reruns exactly the jobs that read them.

from smdown.acquire import params_for as acquire_params_for


rule acquire_smap:
    output:
        coarse_surface=f"{RESOURCES}/coarse_surface.tif",
        coarse_rootzone=f"{RESOURCES}/coarse_rootzone.tif",
        precipitation=f"{RESOURCES}/precipitation.tif",
    log:
        f"{RESOURCES}/logs/acquire_smap.log",
    conda:
        "../../envs/gdal.yaml"
    resources:
        mem_mb=4000,
        runtime=240,
    params:
        acquire=acquire_params_for("smap", config["acquire"]),
    script:
        "../scripts/acquire_smap.py"


rule acquire_sentinel2:
    output:
        ndvi=f"{RESOURCES}/ndvi.tif",
        ndwi=f"{RESOURCES}/ndwi.tif",
    log:
        f"{RESOURCES}/logs/acquire_sentinel2.log",
    conda:
        "../../envs/gdal.yaml"
    resources:
        mem_mb=8000,
        runtime=480,
    params:
        acquire=acquire_params_for("sentinel2", config["acquire"]),
    script:
        "../scripts/acquire_sentinel2.py"


rule acquire_dem:
    output:
        dem=f"{RESOURCES}/dem.tif",
    log:
        f"{RESOURCES}/logs/acquire_dem.log",
    conda:
        "../../envs/gdal.yaml"
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        acquire=acquire_params_for("dem", config["acquire"]),
    script:
        "../scripts/acquire_dem.py"


rule acquire_soil:
    output:
        sand=f"{RESOURCES}/sand.tif",
        clay=f"{RESOURCES}/clay.tif",
        sand_rootzone=f"{RESOURCES}/sand_rootzone.tif",
        clay_rootzone=f"{RESOURCES}/clay_rootzone.tif",
    log:
        f"{RESOURCES}/logs/acquire_soil.log",
    conda:
        "../../envs/gdal.yaml"
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        acquire=acquire_params_for("soil", config["acquire"]),
    script:
        "../scripts/acquire_soil.py"


rule acquire_sentinel1:
    output:
        s1_vv=f"{RESOURCES}/s1_vv.tif",
        s1_vh=f"{RESOURCES}/s1_vh.tif",
    log:
        f"{RESOURCES}/logs/acquire_sentinel1.log",
    conda:
        "../../envs/gdal.yaml"
    resources:
        mem_mb=8000,
        runtime=480,
    params:
        acquire=acquire_params_for("sentinel1", config["acquire"]),
    script:
        "../scripts/acquire_sentinel1.py"


rule acquire_ismn:
    output:
        stations=f"{RESOURCES}/stations.csv",
    log:
        f"{RESOURCES}/logs/acquire_ismn.log",
    conda:
        "../../envs/gdal.yaml"
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        acquire=acquire_params_for("ismn", config["acquire"]),
    script:
        "../scripts/acquire_ismn.py"

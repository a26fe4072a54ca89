# The run's maps as the user's tools read them (smdown.publishing): each layer's written maps as one NetCDF-CF cube
# (xarray, QGIS), and a STAC catalogue of the maps and cubes (QGIS's STAC browser, odc-stac). Both read the merged
# GeoTIFFs (rule merge_tiles), so a change of outputs reruns the writing only.


# a layer's written maps as one NetCDF-CF cube (time, y, x; units, CF grid mapping), where outputs.cube
rule cube:
    input:
        maps=layer_written_maps,
    output:
        f"{R}/cube/{{layer}}.nc",
    log:
        f"{R}/logs/cube/{{layer}}.log",
    benchmark:
        f"{R}/benchmarks/cube/{{layer}}.tsv"
    conda:
        "../../envs/gdal.yaml"
    resources:
        mem_mb=cube_mem_mb,
        runtime=cube_runtime,
    params:
        names=WRITTEN_MAPS,
        dtype=OUTPUTS["dtype"],
        run=RUN,
    script:
        "../scripts/cube.py"


# the run's STAC catalogue: one item per written map (its days, projection, the GeoTIFF), the cubes as the
# collection's assets, hrefs relative to the catalogue; validated offline
rule catalog:
    input:
        maps=written_map_files,
        cubes=written_cubes,
    output:
        directory(f"{R}/stac"),
    log:
        f"{R}/logs/catalog.log",
    benchmark:
        f"{R}/benchmarks/catalog.tsv"
    conda:
        "../../envs/gdal.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        layers=[layer for layer in LAYERS for _ in WRITTEN_MAPS],
        names=[name for _ in LAYERS for name in WRITTEN_MAPS],
        cube_layers=LAYERS if OUTPUTS["cube"] else [],
        run=RUN,
        dtype=OUTPUTS["dtype"],
    script:
        "../scripts/catalog.py"

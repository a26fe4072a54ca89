"""Publishing: a run's maps as the user's tools read them, a NetCDF-CF time cube per layer (xarray, QGIS) and a STAC
catalogue of the run (pystac, QGIS's STAC browser, odc-stac), and the choice of the maps a run writes (config
`outputs`). The top stage: it may import every other; none imports it."""

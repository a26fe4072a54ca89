"""smdown: deep-ensemble downscaling of coarse satellite soil moisture to 30 m."""

__version__ = "0.1.0"

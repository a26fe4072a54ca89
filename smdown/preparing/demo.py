"""The built-in demo world: a synthetic region with a known 30 m soil-moisture truth.

A daily two-layer water balance runs on the 30 m grid nested in a window of the SMAP
EASE-Grid 2.0 9 km grid. Its ingredients are spatial random fields (soil texture, an
unobserved soil factor, land-cover parcels, a fractal DEM with valleys) and a storm
generator; the "SMAP" input is the 9 km block mean of the truth plus a retrieval bias and
noise, and the predictors are written as the real products come (precipitation at 0.1 deg,
NDVI/NDWI every 5 days with clouds at 30 m UTM, DEM at 30 m UTM, sand/clay at 0.0025 deg).

Soil hydraulic properties come from sand, clay and organic matter by the pedotransfer
equations of Saxton, K.E. & Rawls, W.J. (2006), Soil water characteristic estimates by
texture and organic matter for hydrologic solutions, Soil Sci. Soc. Am. J. 70:1569-1578,
doi 10.2136/sssaj2005.0117.

Everything is numpy; rasters are reprojected with `smdown.io.warp` (GDAL), and written
by `write_world` through `smdown.io`.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from affine import Affine
from scipy import ndimage

from smdown import config as smconfig
from smdown import grid as g
from smdown import io
from smdown.contract import LAYERS, contract_file
from smdown.preparing import terrain

SURFACE_MM = 50.0  # 0-5 cm
ROOTZONE_MM = 1000.0  # 0-100 cm, includes the surface layer
LAND_COVER = {0: "bare", 1: "grassland", 2: "shrub", 3: "crop", 4: "irrigated crop"}



# ---------------------------------------------------------------- the world


@dataclass
class World:
    """A demo world: its grids, static fields, the daily truth, the coarse input and the products.

    Truth, coarse and noise arrays are float32 (days x rows x cols). `coarse_* = block mean of
    truth_* + bias_* + noise_*` exactly (float32 rounding aside).
    """

    cfg: dict
    dates: list[str]
    coarse: g.Grid
    fine: g.Grid
    factor: int
    sand: np.ndarray  # % on the fine grid
    clay: np.ndarray
    porosity: np.ndarray  # m3/m3 (Saxton-Rawls theta_S)
    field_capacity: np.ndarray  # theta_33, incl. the unobserved shift
    wilting_point: np.ndarray  # theta_1500
    ksat: np.ndarray  # mm/day, incl. the unobserved factor
    unobserved: np.ndarray  # standard normal random field no predictor shows
    dem: np.ndarray  # m
    twi: np.ndarray
    land_cover: np.ndarray  # int8 codes, see LAND_COVER
    truth_surface: np.ndarray
    truth_rootzone: np.ndarray
    precipitation: np.ndarray  # mm/day on the fine grid (days x rows x cols)
    irrigation: np.ndarray  # mm/day, mean over the fine grid (days,)
    pet: np.ndarray  # mm/day, domain mean (days,)
    coarse_surface: np.ndarray
    coarse_rootzone: np.ndarray
    bias_surface: np.ndarray  # (coarse rows, cols), constant in time
    bias_rootzone: np.ndarray
    noise_surface: np.ndarray  # (days, coarse rows, cols)
    noise_rootzone: np.ndarray
    products: dict[str, io.Stack] = field(default_factory=dict)  # predictor name -> product stack
    stations: pd.DataFrame | None = None


# ---------------------------------------------------------------- random fields


def _rng(seed: int, stream: int) -> np.random.Generator:
    """An independent generator per component, so a component does not shift when another changes."""
    return np.random.default_rng([int(seed), stream])


def gaussian_field(
    rng: np.random.Generator, shape: tuple[int, int], res: float, scales: list[float], weights: list[float] | None = None
) -> np.ndarray:
    """A multi-scale Gaussian random field with unit variance (approximately), float32.

    Each component is white noise smoothed by a Gaussian of SD `scale` metres, generated on a
    grid about scale/5 coarse (cheap for large scales) and upsampled by a cubic spline.
    Components are normalised by their theoretical SD and summed with `weights`.
    """
    weights = [1.0] * len(scales) if weights is None else weights
    out = np.zeros(shape, dtype=np.float32)
    for scale, weight in zip(scales, weights, strict=True):
        step = max(1, int(scale / (5.0 * res)))
        sigma = scale / (res * step)
        pad = int(3 * sigma) + 2
        sub = (math.ceil(shape[0] / step) + 1, math.ceil(shape[1] / step) + 1)
        noise = rng.standard_normal((sub[0] + 2 * pad, sub[1] + 2 * pad)).astype(np.float32)
        comp = ndimage.gaussian_filter(noise, sigma, mode="wrap")[pad:-pad, pad:-pad]
        comp *= 2.0 * math.sqrt(math.pi) * sigma
        if step > 1:
            comp = ndimage.zoom(comp, step, order=3, prefilter=True)
        out += weight * comp[: shape[0], : shape[1]]
    return out / np.float32(math.sqrt(sum(w * w for w in weights)))


# ---------------------------------------------------------------- soil physics


def saxton_rawls(sand: np.ndarray, clay: np.ndarray, om: float | np.ndarray = 2.5) -> dict[str, np.ndarray]:
    """Soil water characteristics from texture by Saxton & Rawls (2006), Table 1 (no density adjustment).

    sand, clay in %, organic matter `om` in % by weight. Returns wilting point theta_1500,
    field capacity theta_33, porosity theta_S (m3/m3), the Campbell slope lambda and
    saturated conductivity ksat (mm/h). E.g. loam (40 % sand, 20 % clay, 2.5 % OM) gives
    0.14 / 0.28 / 0.46 and about 15 mm/h (their Table 3).
    """
    s = np.asarray(sand, dtype=np.float64) / 100.0
    c = np.asarray(clay, dtype=np.float64) / 100.0
    o = om
    t1500t = -0.024 * s + 0.487 * c + 0.006 * o + 0.005 * s * o - 0.013 * c * o + 0.068 * s * c + 0.031
    t1500 = t1500t + (0.14 * t1500t - 0.02)
    t33t = -0.251 * s + 0.195 * c + 0.011 * o + 0.006 * s * o - 0.027 * c * o + 0.452 * s * c + 0.299
    t33 = t33t + (1.283 * t33t**2 - 0.374 * t33t - 0.015)
    ts33t = 0.278 * s + 0.034 * c + 0.022 * o - 0.018 * s * o - 0.027 * c * o - 0.584 * s * c + 0.078
    ts33 = ts33t + (0.636 * ts33t - 0.107)
    ts = t33 + ts33 - 0.097 * s + 0.043
    b = (math.log(1500.0) - math.log(33.0)) / (np.log(t33) - np.log(t1500))
    lam = 1.0 / b
    ksat = 1930.0 * np.maximum(ts - t33, 1e-6) ** (3.0 - lam)
    return {"wilting_point": t1500, "field_capacity": t33, "porosity": ts, "lambda": lam, "ksat": ksat}


# ---------------------------------------------------------------- grids


def utm_crs(lon: float, lat: float) -> str:
    """The WGS 84 / UTM zone CRS of a point (EPSG:326xx north, 327xx south)."""
    zone = int((lon + 180.0) // 6.0) % 60 + 1
    return f"EPSG:{(32600 if lat >= 0 else 32700) + zone}"


def _snapped_grid(crs: str, bounds: tuple[float, float, float, float], res: float, margin: float) -> g.Grid:
    """A north-up grid of `res` cells covering bounds (left, bottom, right, top) + margin, snapped to res."""
    left = math.floor((bounds[0] - margin) / res) * res
    bottom = math.floor((bounds[1] - margin) / res) * res
    right = math.ceil((bounds[2] + margin) / res) * res
    top = math.ceil((bounds[3] + margin) / res) * res
    width, height = int(round((right - left) / res)), int(round((top - bottom) / res))
    return g.Grid(crs, Affine(res, 0.0, left, 0.0, -res, top), height, width)


def _bounds_in(crs: str, grid: g.Grid) -> tuple[float, float, float, float]:
    """Bounds of a grid in another CRS (from densified edges)."""
    left, bottom, right, top = grid.bounds
    t = np.linspace(0.0, 1.0, 21)
    xs = np.concatenate([left + (right - left) * t, np.full(21, right), left + (right - left) * t, np.full(21, left)])
    ys = np.concatenate([np.full(21, bottom), bottom + (top - bottom) * t, np.full(21, top), bottom + (top - bottom) * t])
    lon, lat = io.to_lonlat(grid.crs, xs, ys)
    if crs != "EPSG:4326":
        lon, lat = io.lonlat_to(crs, lon, lat)
    return float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max())


def _expand(grid: g.Grid, pixels: int) -> g.Grid:
    """The grid grown by `pixels` on every side."""
    return g.Grid(grid.crs, grid.transform @ Affine.translation(-pixels, -pixels),
                  grid.height + 2 * pixels, grid.width + 2 * pixels)


# ---------------------------------------------------------------- ingredients


def _dem(rng: np.random.Generator, shape: tuple[int, int], res: float, relief: float) -> np.ndarray:
    """Fractal terrain on a regional tilt (foothills rising to the east), carved by sinuous valleys.

    Relief at each scale s is ~0.004 s (gentler than the 1.3 % tilt), so D8 flow forms channel
    networks with few pits; valleys 10-40 m deep and 150-500 m wide run down the tilt. `relief` scales
    every height difference (hills, tilt, valley depth); 1 is the default foothills.
    """
    scales = [s for s in (60, 120, 250, 500, 1000, 2000, 4000, 8000, 16000) if s >= 1.5 * res]
    amps = [0.004 * s for s in scales]
    z = gaussian_field(rng, shape, res, scales, amps) * np.float32(relief * math.sqrt(sum(a * a for a in amps)))
    y, x = (np.indices(shape, dtype=np.float32) + 0.5) * np.float32(res)
    z += 100.0 + (relief * 0.013) * x + (relief * 0.006) * (y.max() - y)
    height_m = shape[0] * res
    xs = x[0]
    n_valleys = max(1, int(round(height_m / 3000.0)))
    for k in range(n_valleys):
        y0 = (k + rng.uniform(0.2, 0.8)) * height_m / n_valleys
        centre = np.full(xs.shape, y0, dtype=np.float32)
        for wavelength, amplitude in ((rng.uniform(5000, 15000), rng.uniform(200, 1000)),
                                      (rng.uniform(1500, 4000), rng.uniform(50, 250))):
            centre += amplitude * np.sin(2 * math.pi * xs / wavelength + rng.uniform(0, 2 * math.pi))
        depth = (rng.uniform(10, 40) * relief) * (1.0 + 0.3 * np.sin(2 * math.pi * xs / rng.uniform(4000, 12000)))
        width = rng.uniform(150, 500)
        z -= depth[None, :] * np.exp(-(((y - centre[None, :]) / width) ** 2))
    return z.astype(np.float32)


def _land_cover(
    rng: np.random.Generator, dem: np.ndarray, res: float, cfg: dict
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Land cover codes, per-pixel phenology peak day, perennial flag and parcel id.

    Lowlands hold rectangular field parcels (crops, irrigated crops, fallow = bare); the rest is
    grassland, shrub and bare patches from a random field.
    """
    shape = dem.shape
    zn = (dem - dem.mean()) / (dem.std() + 1e-6)
    suit = -0.8 * zn + 0.6 * gaussian_field(rng, shape, res, [1500, 4000])
    agri = suit > np.quantile(suit, 1.0 - cfg["agricultural_fraction"])
    # rectangular parcels of 250-800 m
    edges = []
    for n in shape:
        sizes = rng.uniform(250.0, 800.0, size=int(n * res / 250.0) + 2) / res
        edges.append(np.cumsum(sizes))
    prow = np.searchsorted(edges[0], np.arange(shape[0]) + 0.5)
    pcol = np.searchsorted(edges[1], np.arange(shape[1]) + 0.5)
    parcel = (prow[:, None] * (len(edges[1]) + 1) + pcol[None, :]).astype(np.int64)
    n_parcels = int(parcel.max()) + 1
    u = rng.uniform(size=n_parcels)
    irr = cfg["irrigated_fraction"]
    parcel_class = np.where(u < irr, 4, np.where(u < irr + (1 - irr) * 0.7, 3, 0)).astype(np.int8)
    natural = gaussian_field(rng, shape, res, [300, 1500])
    natural_class = np.where(natural < np.quantile(natural, 0.1), 0, np.where(natural < np.quantile(natural, 0.45), 2, 1))
    cover = np.where(agri, parcel_class[parcel], natural_class).astype(np.int8)
    peak = rng.uniform(100.0, 240.0, size=n_parcels)[parcel].astype(np.float32)
    perennial = (rng.uniform(size=n_parcels) < 0.3)[parcel]
    return cover, peak, perennial, parcel


def _phenology(cover: np.ndarray, peak: np.ndarray, perennial: np.ndarray, doy: int) -> np.ndarray:
    """Unstressed NDVI by land cover and day of year."""

    def bell(centre, width):
        d = (doy - centre + 182.5) % 365.0 - 182.5
        return np.exp(-0.5 * (d / width) ** 2)

    ndvi = np.full(cover.shape, 0.1, dtype=np.float32)
    ndvi = np.where(cover == 1, 0.22 + 0.45 * bell(90.0, 45.0), ndvi)
    ndvi = np.where(cover == 2, 0.30 + 0.15 * bell(120.0, 70.0), ndvi)
    ndvi = np.where(cover == 3, 0.15 + 0.55 * bell(peak - 40.0, 30.0), ndvi)
    irrigated = np.where(perennial, 0.62 + 0.1 * bell(200.0, 60.0), 0.15 + 0.7 * bell(peak, 35.0))
    ndvi = np.where(cover == 4, irrigated, ndvi)
    return ndvi.astype(np.float32)


STRESS_SENSITIVITY = np.array([0.0, 0.7, 0.3, 0.5, 0.3], dtype=np.float32)  # NDVI loss under full water stress


def _pet(doy: int) -> float:
    """Reference evapotranspiration, mm/day: ~7.5 in mid-July, ~0.5 in mid-January (Mediterranean)."""
    return 4.0 + 3.5 * math.cos(2.0 * math.pi * (doy - 196) / 365.0)


def _precipitation(rng: np.random.Generator, meso: g.Grid, doys: list[int], cfg: dict) -> np.ndarray:
    """Daily rain (mm) on a ~1 km grid: a Markov chain of storm days, lognormal fields at 5-20 km, dry gaps."""
    days = len(doys)
    out = np.zeros((days, meso.height, meso.width), dtype=np.float32)
    wet = False
    for i, doy in enumerate(doys):
        p_start = cfg["wet_day_probability"]
        if p_start is None:
            p_start = max(0.12, 0.16 + 0.10 * math.cos(2.0 * math.pi * (doy - 15) / 365.0))
        wet = rng.uniform() < (0.5 if wet else p_start)
        if not wet:
            continue
        depth = min(rng.gamma(0.8, cfg["mean_storm_mm"] / 0.8), 4.0 * cfg["mean_storm_mm"])
        z = gaussian_field(rng, meso.shape, meso.res, [5000, 10000, 20000], [1.0, 0.8, 0.6])
        field_ = np.exp(0.6 * z - 0.18)
        gaps = gaussian_field(rng, meso.shape, meso.res, [4000, 8000])
        field_ = field_ * np.clip((gaps - np.quantile(gaps, rng.uniform(0.0, 0.5))) / 0.5, 0.0, 1.0)
        out[i] = depth * np.minimum(field_ / max(field_.mean(), 1e-6), 5.0)
    return out


# ---------------------------------------------------------------- settings


def demo_config(cfg: dict | None = None) -> dict:
    """The demo settings: `cfg` over the defaults of the schema's `demo` entry (the one set of defaults).

    Validated against workflow/schemas/config.schema.yaml; a bad or unknown key raises
    smdown.config.ConfigError naming it (e.g. 'demo.days').
    """
    return smconfig.validate({"demo": dict(cfg or {})})["demo"]


# ---------------------------------------------------------------- grids and dates


@dataclass
class Frame:
    """Where and when the world lives: the coarse grid, the nested fine grid, a fine grid extended by
    `margin` pixels on every side (the products cover more than the region), and the dates."""

    coarse: g.Grid
    fine: g.Grid
    ext: g.Grid
    factor: int
    margin: int
    dates: list[str]  # output days (YYYY-MM-DD)
    doys: list[int]  # day of year of every simulated day, spin-up first
    spin: int  # spin-up days before dates[0]

    @property
    def inner(self) -> tuple[slice, slice]:
        """The fine grid's window in the extended grid."""
        return (slice(self.margin, self.margin + self.fine.height), slice(self.margin, self.margin + self.fine.width))


def make_frame(cfg: dict, factor: int) -> Frame:
    """The grids (EASE-Grid 2.0 9 km window at cfg lon/lat, nested by `factor`) and the simulated days."""
    x0, y0 = io.lonlat_to(g.EASE2_CRS, cfg["lon"], cfg["lat"])
    coarse = g.ease2_9km_grid(float(x0[0]), float(y0[0]), int(cfg["coarse_rows"]), int(cfg["coarse_cols"]))
    fine = g.nested_grid(coarse, factor)
    extent = max(coarse.height, coarse.width) * coarse.res
    margin = int(math.ceil((1500.0 + 0.05 * extent) / fine.res))
    start = dt.date.fromisoformat(str(cfg["start"]))
    spin = int(cfg["spinup_days"])
    all_dates = [start + dt.timedelta(days=i - spin) for i in range(spin + int(cfg["days"]))]
    return Frame(coarse=coarse, fine=fine, ext=_expand(fine, margin), factor=factor, margin=margin,
                 dates=[d.isoformat() for d in all_dates[spin:]], doys=[d.timetuple().tm_yday for d in all_dates],
                 spin=spin)


# ---------------------------------------------------------------- terrain, soil texture and land cover


@dataclass
class Landscape:
    """Static fields on the extended grid (`unobserved` on the fine grid)."""

    dem: np.ndarray  # m
    twi: np.ndarray
    slope: np.ndarray  # radians
    aspect: np.ndarray  # radians
    sand: np.ndarray  # %
    clay: np.ndarray
    cover: np.ndarray  # int8 codes, see LAND_COVER
    peak: np.ndarray  # phenology peak day
    perennial: np.ndarray  # bool
    parcel: np.ndarray  # field parcel id
    unobserved: np.ndarray  # standard normal random field no predictor shows (fine grid)


def make_landscape(cfg: dict, frame: Frame) -> Landscape:
    """Terrain (relief scaled by cfg relief), its derivatives, soil texture and land cover; seeded by cfg seed."""
    seed, ext, res = int(cfg["seed"]), frame.ext, frame.fine.res
    dem = _dem(_rng(seed, 1), ext.shape, res, float(cfg["relief"]))
    rs = _rng(seed, 2)
    multi = [200, 1000, 4000, 15000]
    sand = np.clip(40 + 18 * gaussian_field(rs, ext.shape, res, multi, [0.6, 1.0, 1.0, 1.0]), 5, 90)
    clay = 20 + 8 * gaussian_field(rs, ext.shape, res, multi, [0.6, 1.0, 1.0, 1.0]) - 0.2 * (sand - 40)
    clay = np.clip(clay, 3, np.minimum(60, 97 - sand))
    cover, peak, perennial, parcel = _land_cover(_rng(seed, 3), dem, res, cfg)
    return Landscape(
        dem=dem, twi=terrain.twi(dem, res), slope=np.radians(terrain.slope(dem, res)),
        aspect=np.radians(terrain.aspect(dem, res)), sand=sand, clay=clay, cover=cover, peak=peak,
        perennial=perennial, parcel=parcel,
        unobserved=gaussian_field(_rng(seed, 4), frame.fine.shape, res, [500, 3000, 15000]),
    )


# ---------------------------------------------------------------- soil column


@dataclass
class Soil:
    """Hydraulic parameters of the two-layer soil column, per fine pixel (float32)."""

    porosity: np.ndarray  # m3/m3 (Saxton-Rawls theta_S)
    field_capacity: np.ndarray  # theta_33, incl. the unobserved shift
    wilting_point: np.ndarray  # theta_1500
    residual: np.ndarray  # lowest surface water content (bare-soil evaporation stops)
    ksat: np.ndarray  # mm/day, incl. the unobserved factor
    ksat_lower: np.ndarray  # mm/day, drainage out of the lower layer (less where water converges)
    expo: np.ndarray  # Campbell K(theta) exponent
    lateral_w: np.ndarray  # share of the region's drainage received as lateral inflow (mean 1)
    subsidy: np.ndarray  # mm/day from a shallow water table where the lower layer is below field capacity


def soil_column(sand: np.ndarray, clay: np.ndarray, organic_matter: float, unobserved: np.ndarray,
                twi: np.ndarray) -> Soil:
    """Soil hydraulics from texture (Saxton-Rawls) shifted by the unobserved field, and hillslope terms from TWI."""
    sr = saxton_rawls(sand, clay, organic_matter)
    ts = sr["porosity"].astype(np.float32)
    wp = sr["wilting_point"].astype(np.float32)
    fc = np.clip(sr["field_capacity"] + 0.02 * unobserved, wp + 0.04, ts - 0.04).astype(np.float32)
    ksat = (24.0 * sr["ksat"] * np.exp(0.8 * unobserved)).astype(np.float32)  # mm/day
    twi_n = ((twi - twi.mean()) / (twi.std() + 1e-6)).astype(np.float32)
    lateral_w = np.exp(0.8 * np.clip(twi_n, -2, 3))
    return Soil(
        porosity=ts, field_capacity=fc, wilting_point=wp, residual=(0.4 * wp).astype(np.float32), ksat=ksat,
        ksat_lower=ksat * np.exp(-0.3 * twi_n).astype(np.float32),
        expo=np.clip(3.0 + 2.0 / sr["lambda"], 6.0, 25.0).astype(np.float32),
        lateral_w=(lateral_w / lateral_w.mean()).astype(np.float32),
        subsidy=(0.8 * np.clip(twi_n - 0.5, 0.0, 3.0)).astype(np.float32),
    )


# ---------------------------------------------------------------- forcing


def make_rain(cfg: dict, frame: Frame) -> tuple[g.Grid, np.ndarray, np.ndarray]:
    """Daily rain of every simulated day: on a ~1 km grid with a 27 km margin, and bilinear on the fine grid."""
    coarse = frame.coarse
    meso = g.nested_grid(g.Grid(coarse.crs, coarse.transform @ Affine.translation(-3, -3),
                                coarse.height + 6, coarse.width + 6), 9)
    rain_meso = _precipitation(_rng(int(cfg["seed"]), 5), meso, frame.doys, cfg)
    rain_fine = io.warp(io.Stack(rain_meso, meso), frame.fine, "bilinear").data
    rain_fine[~(rain_fine > 0)] = 0.0  # NaN (none expected) and negative cubic/bilinear overshoot
    return meso, rain_meso, rain_fine


def irrigation(rel_rz: np.ndarray, parcel_ids: np.ndarray, pet: float) -> np.ndarray:
    """Irrigation water (mm) per pixel: 40 mm on every pixel of an irrigated parcel whose mean root-zone
    relative available water `rel_rz` is below 0.5, on a day of evaporative demand `pet` above 3 mm.

    `parcel_ids` is 0 outside irrigated parcels, else the parcel's id + 1.
    """
    irrigated = parcel_ids > 0
    if not irrigated.any() or pet <= 3.0:
        return np.zeros(rel_rz.shape, dtype=np.float32)
    need = _parcel_mean(rel_rz, parcel_ids) < 0.5
    return np.where(irrigated & need[parcel_ids], np.float32(40.0), np.float32(0.0))


# ---------------------------------------------------------------- water balance


def water_balance_step(
    th1: np.ndarray, thl: np.ndarray, water: np.ndarray, pet_px: np.ndarray, veg: np.ndarray, soil: Soil
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """One day of the two-layer bucket: surface (0-5 cm) water content th1, lower layer (5-100 cm) thl.

    water: rain + irrigation (mm); pet_px: potential evapotranspiration (mm); veg: vegetation cover (0-1).
    Returns the new th1 and thl (float32), the transpiration stress factor beta2 (1 = unstressed) and the
    fluxes in mm: water, runoff, evaporation, transpiration, drainage, lateral (inflow), subsidy (capillary
    rise from a water table) and clipped (storage added by holding the contents in their bounds; zero unless
    a layer over- or underflows). Storage (th1 * 50 + thl * 950 mm) changes by exactly
    water - runoff - evaporation - transpiration - drainage + lateral + subsidy + clipped.
    """
    ts, fc, wp, residual = soil.porosity, soil.field_capacity, soil.wilting_point, soil.residual
    ksat, expo = soil.ksat, soil.expo
    z1, zl = SURFACE_MM, ROOTZONE_MM - SURFACE_MM

    # infiltration with saturation- and infiltration-excess runoff
    rel1 = np.clip((th1 - residual) / (ts - residual), 0.0, 1.0)
    runoff = water * 0.4 * rel1**3 + np.maximum(water - 0.5 * ksat, 0.0)
    infil = water - np.minimum(runoff, water)
    s1 = th1 * z1 + infil
    sl = thl * zl
    over = np.maximum(s1 - ts * z1, 0.0)
    s1 -= over
    sl += over

    # evaporation from bare soil, transpiration from roots
    beta1 = np.clip((s1 / z1 - residual) / (fc - residual), 0.0, 1.0) ** 2
    evap = np.minimum(pet_px * (1.0 - veg) * beta1, np.maximum(s1 - residual * z1, 0.0))
    s1 -= evap
    rz = (s1 + sl) / ROOTZONE_MM
    beta2 = np.clip((rz - wp) / (0.5 * (fc - wp)), 0.0, 1.0)
    transp = pet_px * 1.15 * veg * beta2
    t1 = np.minimum(0.05 * transp, np.maximum(s1 - wp * z1, 0.0))
    tl = np.minimum(0.95 * transp, np.maximum(sl - wp * zl, 0.0))
    s1 -= t1
    sl -= tl

    # percolation surface -> lower (Campbell K(theta)), capillary exchange, drainage, lateral inflow
    perc = np.minimum(ksat * (s1 / z1 / ts) ** expo, np.maximum(s1 - fc * z1, 0.0) * 0.9)
    perc = np.minimum(perc, np.maximum(ts * zl - sl, 0.0))
    s1 -= perc
    sl += perc
    exch = 0.15 * (s1 / z1 - sl / zl) * z1
    exch = np.clip(exch, -np.maximum(sl - wp * zl, 0.0), np.maximum(s1 - residual * z1, 0.0))
    s1 -= exch
    sl += exch
    drain = np.minimum(soil.ksat_lower * (sl / zl / ts) ** expo, np.maximum(sl - 0.7 * wp * zl, 0.0) * 0.5)
    sl -= drain
    lateral = 0.3 * soil.lateral_w * drain.mean()
    rise = np.where(sl < fc * zl, soil.subsidy, 0.0)
    sl += lateral + rise
    th1_new = np.clip(s1 / z1, residual, ts).astype(np.float32)
    thl_new = np.clip(sl / zl, 0.7 * wp, ts).astype(np.float32)
    clipped = (th1_new.astype(np.float64) * z1 + thl_new.astype(np.float64) * zl) - (s1 + sl)
    fluxes = {"water": water, "runoff": water - infil, "evaporation": evap, "transpiration": t1 + tl,
              "drainage": drain, "lateral": lateral, "subsidy": rise, "clipped": clipped}
    return th1_new, thl_new, beta2, fluxes


def storage_mm(th1: np.ndarray, thl: np.ndarray) -> np.ndarray:
    """Water stored in the 0-100 cm column (mm), float64."""
    return th1.astype(np.float64) * SURFACE_MM + thl.astype(np.float64) * (ROOTZONE_MM - SURFACE_MM)


# ---------------------------------------------------------------- optical scenes


def optical_scene(land: Landscape, stress: np.ndarray, th1: np.ndarray, soil: Soil, doy: int,
                  margin: int) -> tuple[np.ndarray, np.ndarray]:
    """NDVI and NDWI on the extended grid: phenology damped by water stress, NDWI also sees bare wet soil."""
    sens = STRESS_SENSITIVITY[land.cover]
    stress_ext = np.pad(stress, margin, mode="reflect")
    pheno = _phenology(land.cover, land.peak, land.perennial, doy)
    ndvi_ext = 0.1 + (pheno - 0.1) * (1.0 - sens * (1.0 - stress_ext))
    wet = np.clip((th1 - soil.residual) / (soil.porosity - soil.residual), 0, 1)
    wet_ext = np.pad(wet, margin, mode="reflect")
    cov = np.clip((ndvi_ext - 0.1) / 0.7, 0.0, 1.0)
    ndwi = -0.22 + 0.85 * (ndvi_ext - 0.1) * (0.6 + 0.4 * stress_ext) + 0.12 * wet_ext * (1.0 - cov)
    return ndvi_ext, ndwi.astype(np.float32)


# ---------------------------------------------------------------- the daily run


@dataclass
class Simulation:
    """The daily run's outputs over the output days (spin-up dropped)."""

    truth_surface: np.ndarray
    truth_rootzone: np.ndarray
    irrigation: np.ndarray  # mm/day, mean over the fine grid
    pet: np.ndarray  # mm/day, domain mean
    ndvi_scenes: list[np.ndarray]
    ndwi_scenes: list[np.ndarray]
    scene_dates: list[str]


def simulate(cfg: dict, frame: Frame, land: Landscape, soil: Soil, rain_fine: np.ndarray) -> Simulation:
    """Run the water balance day by day from mid-range storage through the spin-up and the output days;
    take an optical scene every cfg revisit_days."""
    inner, spin, n_days = frame.inner, frame.spin, len(frame.dates)
    rp = _rng(int(cfg["seed"]), 6)
    pet_scale = float(cfg["pet_scale"])
    cover, peak, perennial = land.cover[inner], land.peak[inner], land.perennial[inner]
    sens = STRESS_SENSITIVITY[land.cover][inner]
    pet_terrain = (1.0 + 0.3 * np.sin(land.slope) * -np.cos(land.aspect)).astype(np.float32)[inner]  # sunny slopes
    parcel_ids = np.where(cover == 4, land.parcel[inner] + 1, 0)
    wp, fc = soil.wilting_point, soil.field_capacity
    z1, zl = SURFACE_MM, ROOTZONE_MM - SURFACE_MM

    th1 = (wp + 0.5 * (fc - wp)).astype(np.float32)
    thl = th1.copy()
    stress_lag = np.ones(frame.fine.shape, dtype=np.float32)
    truth_s = np.empty((n_days, *frame.fine.shape), dtype=np.float32)
    truth_r = np.empty((n_days, *frame.fine.shape), dtype=np.float32)
    scene_every = int(cfg["revisit_days"])
    out = Simulation(truth_s, truth_r, np.zeros(n_days, dtype=np.float32), np.zeros(n_days, dtype=np.float32),
                     [], [], [])
    for t, doy in enumerate(frame.doys):
        rain = rain_fine[t]
        pet = np.float32(_pet(doy) * pet_scale * rp.uniform(0.85, 1.15) * (0.6 if rain.mean() > 1.0 else 1.0))
        ndvi = 0.1 + (_phenology(cover, peak, perennial, doy) - 0.1) * (1.0 - sens * (1.0 - stress_lag))
        veg = np.clip((ndvi - 0.1) / 0.7, 0.0, 1.0)
        pet_px = pet * pet_terrain

        th_rz = (th1 * z1 + thl * zl) / ROOTZONE_MM
        add = irrigation((th_rz - wp) / (fc - wp), parcel_ids, float(pet))
        water = rain + add
        th1, thl, beta2, _ = water_balance_step(th1, thl, water, pet_px, veg, soil)
        stress_lag += (beta2.astype(np.float32) - stress_lag) / 10.0

        if t >= spin:
            k = t - spin
            truth_s[k] = th1
            truth_r[k] = (th1 * z1 + thl * zl) / ROOTZONE_MM
            out.pet[k] = pet
            out.irrigation[k] = add.mean()
            if k % scene_every == 0:
                ndvi_ext, ndwi_ext = optical_scene(land, stress_lag, th1, soil, doy, frame.margin)
                out.scene_dates.append(frame.dates[k])
                out.ndvi_scenes.append(ndvi_ext)
                out.ndwi_scenes.append(ndwi_ext)
    return out


# ---------------------------------------------------------------- make the world


def make_world(cfg: dict, fine_factor: int = 300) -> World:
    """Build the demo world from the `demo` config (keys and defaults: the schema's `demo` entry); pure and seeded.

    `fine_factor` (default 300, i.e. 30 m) subdivides each 9 km cell; tests pass a small one.
    """
    cfg = demo_config(cfg)
    seed = int(cfg["seed"])
    frame = make_frame(cfg, int(fine_factor))
    inner = frame.inner
    land = make_landscape(cfg, frame)
    soil = soil_column(land.sand[inner], land.clay[inner], cfg["organic_matter"], land.unobserved, land.twi[inner])
    meso, rain_meso, rain_fine = make_rain(cfg, frame)
    sim = simulate(cfg, frame, land, soil, rain_fine)
    spin = frame.spin
    world = World(
        cfg=cfg, dates=frame.dates, coarse=frame.coarse, fine=frame.fine, factor=frame.factor,
        sand=land.sand[inner].astype(np.float32), clay=land.clay[inner].astype(np.float32),
        porosity=soil.porosity, field_capacity=soil.field_capacity, wilting_point=soil.wilting_point,
        ksat=soil.ksat, unobserved=land.unobserved, dem=land.dem[inner], twi=land.twi[inner],
        land_cover=land.cover[inner], truth_surface=sim.truth_surface, truth_rootzone=sim.truth_rootzone,
        precipitation=rain_fine[spin:], irrigation=sim.irrigation, pet=sim.pet,
        coarse_surface=np.empty(0), coarse_rootzone=np.empty(0),
        bias_surface=np.empty(0), bias_rootzone=np.empty(0), noise_surface=np.empty(0), noise_rootzone=np.empty(0),
    )
    _coarse_retrieval(world, _rng(seed, 7))
    world.products = _products(world, frame.ext, land.dem, land.sand, land.clay, meso, rain_meso[spin:],
                               np.stack(sim.ndvi_scenes), np.stack(sim.ndwi_scenes), sim.scene_dates, _rng(seed, 8))
    world.stations = _stations(world, _rng(seed, 9))
    return world


def _parcel_mean(values: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Mean of values per id (index = id)."""
    n = int(ids.max()) + 1
    total = np.bincount(ids.ravel(), weights=values.ravel(), minlength=n)
    count = np.bincount(ids.ravel(), minlength=n)
    return total / np.maximum(count, 1)


def _coarse_retrieval(world: World, rng: np.random.Generator) -> None:
    """The "SMAP" input: 9 km block mean of the truth + a static bias per cell + noise (AR(1) in time)."""
    cfg, shape = world.cfg, world.coarse.shape
    n = len(world.dates)
    for layer, rho in (("surface", 0.3), ("rootzone", 0.8)):
        truth = getattr(world, f"truth_{layer}")
        mean = g.block_mean(truth, world.factor)
        bias = (cfg[f"coarse_bias_{layer}"] + 0.3 * abs(cfg[f"coarse_bias_{layer}"]) * rng.standard_normal(shape))
        sd = cfg[f"coarse_noise_{layer}"]
        eps = rng.standard_normal((n, *shape))
        noise = np.empty((n, *shape))
        noise[0] = eps[0]
        for t in range(1, n):
            noise[t] = rho * noise[t - 1] + math.sqrt(1 - rho * rho) * eps[t]
        coarse = np.clip(mean + bias + sd * noise, 0.01, 0.6).astype(np.float32)
        setattr(world, f"coarse_{layer}", coarse)
        setattr(world, f"bias_{layer}", bias.astype(np.float32))
        setattr(world, f"noise_{layer}", (coarse.astype(np.float64) - mean - bias).astype(np.float32))


def _products(world, ext, dem_ext, sand_ext, clay_ext, meso, rain_meso, ndvi, ndwi, scene_dates, rng) -> dict:
    """The predictors as real products come, warped from the generated fields."""
    cfg = world.cfg
    lon_c, lat_c = io.to_lonlat(world.fine.crs, *(world.fine.transform @ (world.fine.width / 2, world.fine.height / 2)))
    utm = utm_crs(float(lon_c[0]), float(lat_c[0]))
    opt = _snapped_grid(utm, _bounds_in(utm, world.fine), float(cfg["optical_res"]), 600.0)
    ll = _bounds_in("EPSG:4326", world.fine)
    soil = _snapped_grid("EPSG:4326", ll, float(cfg["soil_res_deg"]), 0.01)
    pres = float(cfg["precip_res_deg"])
    precip_grid = _snapped_grid("EPSG:4326", ll, pres, pres)

    products = {}
    rain = io.warp(io.Stack(rain_meso, meso, world.dates), precip_grid, "average")
    noise = np.exp(0.2 * rng.standard_normal(rain.data.shape) - 0.02).astype(np.float32)
    products["precipitation"] = io.Stack(np.maximum(rain.data * noise, 0.0).astype(np.float32), precip_grid,
                                         world.dates)
    for name, scenes, lo, hi in (("ndvi", ndvi, -0.2, 1.0), ("ndwi", ndwi, -0.6, 0.8)):
        stack = io.warp(io.Stack(scenes.astype(np.float32), ext, scene_dates), opt, "cubic")
        data = stack.data + 0.015 * _rng(int(cfg["seed"]), 20 + len(name)).standard_normal(stack.data.shape)
        stack.data = np.clip(data, lo, hi).astype(np.float32)
        products[name] = stack
    clouds = _clouds(rng, opt, len(scene_dates), cfg)
    for name in ("ndvi", "ndwi"):
        products[name].data[clouds] = np.nan
    products["dem"] = io.Stack(io.warp(io.Stack(dem_ext[None], ext), opt, "cubic").data, opt)
    for name, data in (("sand", sand_ext), ("clay", clay_ext)):
        stack = io.warp(io.Stack(data[None].astype(np.float32), ext), soil, "average")
        stack.data = np.clip(stack.data + 2.0 * rng.standard_normal(stack.data.shape), 0, 100).astype(np.float32)
        products[name] = io.Stack(stack.data, soil)
    return products


def _clouds(rng: np.random.Generator, grid: g.Grid, n: int, cfg: dict) -> np.ndarray:
    """Cloud masks (n x rows x cols): blobs at 0.5-3 km, cover ~U(0, 2*mean), sometimes full."""
    masks = np.zeros((n, *grid.shape), dtype=bool)
    mean = float(cfg["cloud_cover"])
    for i in range(n):
        if rng.uniform() < cfg["full_cloud_probability"]:
            masks[i] = True
            continue
        cover = rng.uniform(0.0, min(1.0, 2.0 * mean))
        blob = gaussian_field(rng, grid.shape, grid.res, [500, 1500, 3000])
        masks[i] = blob > np.quantile(blob, 1.0 - cover)
    return masks


def _stations(world: World, rng: np.random.Generator) -> pd.DataFrame:
    """In-situ stations at random pixels: truth + per-station bias + sensor noise, some days missing."""
    cfg = world.cfg
    n = int(cfg["stations"])
    cols = ["station", "lon", "lat", "date", "surface", "rootzone"]
    if n == 0:
        return pd.DataFrame(columns=cols)
    h, w = world.fine.shape
    edge = min(2, h // 4, w // 4)
    rows = rng.integers(edge, h - edge, size=n)
    colz = rng.integers(edge, w - edge, size=n)
    x, y = world.fine.transform @ (colz + 0.5, rows + 0.5)
    lon, lat = io.to_lonlat(world.fine.crs, x, y)
    frames = []
    days = len(world.dates)
    for i in range(n):
        keep = rng.uniform(size=days) >= cfg["station_missing"]
        values = {}
        for layer in LAYERS:
            truth = getattr(world, f"truth_{layer}")[:, rows[i], colz[i]].astype(np.float64)
            obs = truth + cfg["station_bias"] * rng.standard_normal() + cfg["station_noise"] * rng.standard_normal(days)
            values[layer] = np.round(np.clip(obs, 0.0, 0.6), 4)
        frames.append(pd.DataFrame({
            "station": f"S{i + 1:02d}", "lon": np.round(lon[i], 6), "lat": np.round(lat[i], 6),
            "date": world.dates, **values,
        })[keep])
    return pd.concat(frames, ignore_index=True)[cols]


# ---------------------------------------------------------------- writing


FILES = {name: contract_file(name) for name in (
    "coarse_surface", "coarse_rootzone", "truth_surface", "truth_rootzone", "precipitation", "ndvi", "ndwi", "dem",
    "sand", "clay", "stations")}


def write_world(world: World, outdir: str | Path) -> dict[str, Path]:
    """Write the data-contract files (FILES) into outdir; returns name -> path."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths = {name: outdir / fname for name, fname in FILES.items()}
    for layer in LAYERS:
        io.write_stack(paths[f"coarse_{layer}"], io.Stack(getattr(world, f"coarse_{layer}"), world.coarse, world.dates))
        io.write_stack(paths[f"truth_{layer}"], io.Stack(getattr(world, f"truth_{layer}"), world.fine, world.dates))
    for name, stack in world.products.items():
        io.write_stack(paths[name], stack)
    with io.atomic_path(paths["stations"]) as tmp:
        world.stations.to_csv(tmp, index=False)
    return paths

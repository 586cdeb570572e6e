"""The intensity source for a location, chosen by precedence (:func:`intensity_source`).

Its own module because it picks between the sources of :mod:`.intensity` (fixed, the embedded
tables) and :mod:`.electricitymaps` (live), which itself builds on :mod:`.intensity`.
"""

from __future__ import annotations

import warnings

from mlflow_green import _settings
from mlflow_green.accounting.electricitymaps import ElectricityMapsIntensity
from mlflow_green.accounting.intensity import (
    BASIS_LIFECYCLE,
    ENV_INTENSITY_BASIS,
    FixedIntensity,
    GreenWarning,
    IntensitySource,
    StaticIntensity,
    parse_basis,
    parse_intensity,
)
from mlflow_green.accounting.location import Location, resolve_location
from mlflow_green.errors import ConfigError

__all__ = ["intensity_source"]


def _parse_env_basis(raw: str) -> str:
    try:
        return parse_basis(raw)
    except ConfigError:
        raise ConfigError(f"{ENV_INTENSITY_BASIS}={raw!r}: use 'lifecycle' (the default) or 'direct'") from None


def intensity_source(
    location: Location | None = None,
    *,
    fixed: float | str | None = None,
    token: str | None = None,
    base_url: str | None = None,
    timeout_s: float | None = None,
    basis: str | None = None,
) -> IntensitySource:
    """The intensity source for a location, by precedence.

    ``fixed`` (g/kWh) > ``MLFLOW_GREEN_INTENSITY`` > Electricity Maps (``token`` or
    ``ELECTRICITYMAPS_API_TOKEN``; base URL ``base_url`` or ``MLFLOW_GREEN_ELECTRICITYMAPS_URL``)
    > the embedded annual data. ``location`` None resolves from the environment; when nothing
    is configured the world average is used and a :class:`GreenWarning` says how to set one.
    ``basis`` selects ``lifecycle`` or ``direct`` figures (None: ``MLFLOW_GREEN_INTENSITY_BASIS``,
    else ``lifecycle``); a fixed value has the basis the user gave it. Bad fixed values or a basis with no figure raise
    :class:`~mlflow_green.errors.ConfigError`.
    """
    if basis is None:
        env_basis = _settings.env_str(ENV_INTENSITY_BASIS)
        basis = BASIS_LIFECYCLE if env_basis is None else _parse_env_basis(env_basis)
    basis = parse_basis(basis)
    if location is None:
        location = resolve_location()
    if fixed is not None:
        return FixedIntensity(fixed, location)
    env_fixed = _settings.env_str(_settings.ENV_INTENSITY)
    if env_fixed is not None:
        value = parse_intensity(env_fixed, _settings.ENV_INTENSITY)
        return FixedIntensity(value, location)
    if location.is_world and not location.configured:
        warnings.warn(
            "no location configured: using the world-average grid intensity; set "
            "MLFLOW_GREEN_COUNTRY (ISO 3166 alpha-3), MLFLOW_GREEN_CLOUD_PROVIDER and "
            "MLFLOW_GREEN_CLOUD_REGION, or MLFLOW_GREEN_INTENSITY",
            GreenWarning,
            stacklevel=2,
        )
    token = token or _settings.env_str(_settings.ENV_EM_TOKEN)
    if token and not location.is_world:
        return ElectricityMapsIntensity(location, token, base_url=base_url, timeout_s=timeout_s, basis=basis)
    return StaticIntensity(location, basis)

"""Errors raised by mlflow_green.

Vendor exceptions (NVML, amdsmi, OS errors on powercap files, HTTP errors) are translated
into these at the edge where they happen, so callers catch one family.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "GateDenied",
    "GreenError",
    "IntensityError",
    "SamplerError",
    "SamplerUnavailable",
]


class GreenError(Exception):
    """Base class of every error mlflow_green raises on purpose."""


class ConfigError(GreenError, ValueError):
    """Bad input from a user: an argument, an environment variable, a file.

    The message is one line that says what to change.
    """


class SamplerError(GreenError):
    """A hardware sampler failed while reading."""


class SamplerUnavailable(SamplerError):
    """An explicitly requested sampler cannot run on this machine."""


class IntensityError(GreenError):
    """A carbon-intensity source could not answer."""


class GateDenied(GreenError):
    """A registry operation was refused by the carbon gate."""

"""``mlflow_green.autolog()``: measure every Hugging Face and Lightning training run.

Like MLflow's autolog: calling it patches the training entry points of the frameworks
(``transformers.Trainer.train``, ``lightning``/``pytorch_lightning`` ``Trainer.fit``) so that
a thin callback is added for the duration of the call; frameworks imported later are
patched on import. Calling it again reconfigures; ``disable=True`` undoes every patch.
Plain PyTorch loops use :func:`mlflow_green.epochs` or :class:`mlflow_green.GreenTracker`,
which take their defaults from the last ``autolog()`` call.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlflow_green import _settings
from mlflow_green.tracking.config import GreenConfig, OnBudget, current_config, set_current_config

__all__ = ["autolog", "current_config", "is_enabled"]

_log = logging.getLogger("mlflow_green")

# Module name whose import triggers the patch -> the patch function's name in this module.
_HOOK_MODULES: dict[str, str] = {
    "transformers.trainer": "_patch_transformers",
    "lightning.pytorch": "_patch_lightning",
    "pytorch_lightning": "_patch_pytorch_lightning",
}


@dataclass
class _Patch:
    owner: Any
    name: str
    original: Any
    wrapper: Any


@dataclass
class _State:
    enabled: bool = False
    patches: dict[tuple[int, str], _Patch] = field(default_factory=dict)
    hooks: set[str] = field(default_factory=set)
    lock: threading.RLock = field(default_factory=threading.RLock)


_STATE = _State()


def is_enabled() -> bool:
    """True while autolog is on (and MLFLOW_GREEN_DISABLE is not set)."""
    return _STATE.enabled and not _settings.disabled()


def autolog(
    *,
    disable: bool = False,
    silent: bool = False,
    sampler: str | None = None,
    share: bool | str | None = None,
    country: str | None = None,
    region: str | None = None,
    cloud_provider: str | None = None,
    cloud_region: str | None = None,
    intensity: float | None = None,
    pue: float | str | None = None,
    embodied_profile: str | None = None,
    device_embodied_kg: float | None = None,
    node_embodied_kg: float | None = None,
    devices_per_node: int | None = None,
    lifetime_years: float | None = None,
    accuracy_metric: str | Sequence[str] | None = None,
    budget_kg: float | None = None,
    on_budget: OnBudget = "warn",
    log_every_n_epochs: int = 1,
    report: bool = True,
    signing_key: str | os.PathLike[str] | None = None,
    renewable_fraction: float | str | None = None,
    market_intensity: float | None = None,
    wue: float | str | None = None,
    parameters: Any = None,
) -> None:
    """Record per-epoch energy, CO2eq, embodied share and accuracy per kg of every training run.

    After this call, ``transformers.Trainer.train`` and Lightning's ``Trainer.fit`` log the
    ``green/`` metrics at ``step = epoch`` (0-based) into the active MLflow run (the one Hugging
    Face's ``MLflowCallback``, Lightning's ``MLFlowLogger``, ``mlflow.autolog()`` or you opened),
    or into a new run when none is active. The provenance of every number is written as
    ``green.*`` tags; ``green/report.json`` and ``green/report.html`` are logged at the end, and
    a short summary is printed unless ``silent``. An option not given comes from the
    ``MLFLOW_GREEN_*`` environment variable named below, where there is one.

    Args:
        disable: undo every patch and forget the options; the frameworks are not measured
            until the next ``autolog()`` (``epochs()`` and ``GreenTracker`` still work).
        silent: no console summary and no budget warnings on the console.
        sampler: ``auto`` (default), ``none``, ``simulated:<watts>[x<devices>]`` or
            ``replay:<path>``; default MLFLOW_GREEN_SAMPLER.
        share: charge the job its share of shared devices (``share:<basis>`` methods):
            ``"auto"`` (default: CPU and RAM by this process tree, a GPU when another process
            is on it or it is a MIG instance), True/``"on"``, or False/``"off"`` when the job
            owns the machine; default MLFLOW_GREEN_SHARE.
        country, region, cloud_provider, cloud_region: where the job runs (ISO 3166 alpha-3
            country and an optional region, or a cloud provider and region) for the grid's
            carbon intensity; default from MLFLOW_GREEN_* variables, else the world average.
        intensity: a fixed grid intensity in gCO2eq/kWh, instead of the location's.
        pue: the data centre's power usage effectiveness, or a provider name.
        embodied_profile, device_embodied_kg, node_embodied_kg, devices_per_node,
            lifetime_years: the embodied-emissions model of the hardware (SCI's M).
        accuracy_metric: the metric read as accuracy (default: the first present of
            eval_accuracy, val_accuracy, val_acc, accuracy, ...), or a list of names.
        budget_kg: a CO2eq budget (operational + embodied) for the whole run.
        on_budget: ``"warn"`` or ``"stop"`` when the projected total exceeds ``budget_kg``;
            stop ends training cleanly after the current epoch and tags ``green.stop_reason``.
        log_every_n_epochs: send to MLflow every n epochs (each epoch is journaled at once).
        report: log the report artifacts at the end of the run.
        signing_key: path to an Ed25519 private key (PEM, from ``mlflow-green keygen``) that
            signs every epoch record into ``green/attestation.json``; default
            MLFLOW_GREEN_SIGNING_KEY; none: the run is not signed.
        renewable_fraction: share of the energy matched by certificates or PPAs (0-1), counted
            at 0 g/kWh in ``green/co2eq_market_kg``; default MLFLOW_GREEN_RENEWABLE_FRACTION, else 0.
        market_intensity: your supplier's g/kWh for the unmatched rest; default
            MLFLOW_GREEN_MARKET_INTENSITY, else the location's residual mix.
        wue: on-site water usage effectiveness, L/kWh of IT energy, or ``aws``/``azure``;
            default MLFLOW_GREEN_WUE, else unknown (only off-site water in ``green/water_l``).
        parameters: the model's parameter count (or the torch module) for
            ``green/kg_per_bparam``; the Hugging Face and Lightning callbacks count it themselves.

    Raises:
        ConfigError: an option is invalid (the message says which and what to use).
    """
    _configure({k: v for k, v in locals().items() if k != "disable"}, disable=disable)


def _configure(options: dict[str, Any], *, disable: bool) -> None:
    """Turn autolog off, or validate the options, make them the defaults and patch."""
    with _STATE.lock:
        if disable or _settings.disabled():
            _unpatch_all()
            _STATE.enabled = False
            # epochs() and GreenTracker take their defaults from autolog: back to defaults.
            set_current_config(None)
            return
        config = GreenConfig.create(**options)
        check_config(config)
        set_current_config(config)
        _STATE.enabled = True
        for module_name, patcher in _HOOK_MODULES.items():
            if module_name in sys.modules:
                globals()[patcher](sys.modules[module_name])
            elif module_name not in _STATE.hooks:
                _register_hook(module_name, patcher)


def check_config(config: GreenConfig) -> None:
    """Resolve what can be resolved now, so a typo fails at ``autolog()``, not mid-training."""
    import mlflow_green.accounting as acct
    from mlflow_green.samplers import parse_spec
    from mlflow_green.tracking.attestation import resolve_signing_key

    # A bad key file (missing, unreadable, not Ed25519; argument or MLFLOW_GREEN_SIGNING_KEY).
    resolve_signing_key(config.signing_key)

    parse_spec(config.sampler)
    acct.resolve_location(
        country=config.country,
        region=config.region,
        cloud_provider=config.cloud_provider,
        cloud_region=config.cloud_region,
    )
    acct.resolve_pue(config.pue)
    acct.resolve_renewable_fraction(config.renewable_fraction)  # the environment's too
    acct.resolve_market_intensity(config.market_intensity)
    acct.resolve_wue(config.wue)


def _register_hook(module_name: str, patcher: str) -> None:
    from mlflow_green.tracking._mlflow_compat import register_post_import_hook

    def hook(module: Any) -> None:
        with _STATE.lock:
            if _STATE.enabled:
                globals()[patcher](module)

    register_post_import_hook(hook, module_name)
    _STATE.hooks.add(module_name)


def _patch(owner: Any, name: str, make_wrapper: Callable[[Any], Any]) -> None:
    key = (id(owner), name)
    if key in _STATE.patches and getattr(owner, name) is _STATE.patches[key].wrapper:
        return
    original = owner.__dict__[name]
    wrapper = make_wrapper(original)
    wrapper.__mlflow_green_patch__ = True
    setattr(owner, name, wrapper)
    _STATE.patches[key] = _Patch(owner, name, original, wrapper)


def _unpatch_all() -> None:
    for key, patch in list(_STATE.patches.items()):
        if patch.owner.__dict__.get(patch.name) is patch.wrapper:
            setattr(patch.owner, patch.name, patch.original)
            del _STATE.patches[key]
        # else: someone (e.g. mlflow.autolog) wrapped our wrapper; it stays as a pass-through
        # because every wrapper checks is_enabled() first.


def _patch_transformers(module: Any) -> None:
    trainer_cls = getattr(module, "Trainer", None)
    if trainer_cls is None:
        return

    def make_wrapper(original: Any) -> Any:
        @functools.wraps(original)
        def train(self: Any, *args: Any, **kwargs: Any) -> Any:
            if not is_enabled():
                return original(self, *args, **kwargs)
            from mlflow_green.tracking.hf import GreenHFCallback

            handler = getattr(self, "callback_handler", None)
            if handler is None or any(isinstance(c, GreenHFCallback) for c in handler.callbacks):
                return original(self, *args, **kwargs)
            callback = GreenHFCallback(config=current_config())
            self.add_callback(callback)
            try:
                return original(self, *args, **kwargs)
            except BaseException:
                callback.abort()
                raise
            finally:
                self.remove_callback(callback)

        return train

    _patch(trainer_cls, "train", make_wrapper)


def _patch_lightning_flavor(trainer_cls: Any, flavor: str) -> None:
    def make_wrapper(original: Any) -> Any:
        @functools.wraps(original)
        def fit(self: Any, *args: Any, **kwargs: Any) -> Any:
            if not is_enabled():
                return original(self, *args, **kwargs)
            cls = _lightning_callback_class(flavor)
            callbacks = self.callbacks
            if any(isinstance(c, cls) for c in callbacks):
                return original(self, *args, **kwargs)
            callback = cls(config=current_config())
            callbacks.append(callback)
            try:
                return original(self, *args, **kwargs)
            except BaseException:
                callback.abort()
                raise
            finally:
                if callback in self.callbacks:
                    self.callbacks.remove(callback)

        return fit

    _patch(trainer_cls, "fit", make_wrapper)


def _lightning_callback_class(flavor: str) -> type:
    """The callback class for ``lightning`` or ``pytorch_lightning``."""
    if flavor == "lightning":
        from mlflow_green.lightning import GreenCallback

        return GreenCallback
    from mlflow_green.tracking._pl_callback import GreenPLCallback

    return GreenPLCallback


def _patch_lightning(module: Any) -> None:
    from lightning.pytorch.trainer.trainer import Trainer

    _patch_lightning_flavor(Trainer, "lightning")


def _patch_pytorch_lightning(module: Any) -> None:
    from pytorch_lightning.trainer.trainer import Trainer

    _patch_lightning_flavor(Trainer, "pytorch_lightning")

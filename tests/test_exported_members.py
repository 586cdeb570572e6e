"""The public surface of ``mlflow_green``: a curated, sorted ``__all__`` and a light import."""

from __future__ import annotations

import subprocess
import sys

import mlflow_green


def test_all_is_sorted_and_resolves() -> None:
    names = mlflow_green.__all__
    assert names == sorted(names)
    assert len(set(names)) == len(names)
    for name in names:
        assert getattr(mlflow_green, name) is not None, name
    assert set(names) <= set(dir(mlflow_green))


def test_public_members_are_documented() -> None:
    for name in ("autolog", "epochs", "GreenTracker", "report_accuracy", "recover"):
        assert (getattr(mlflow_green, name).__doc__ or "").strip(), name


def test_import_is_light() -> None:
    code = (
        "import sys, mlflow_green\n"
        "mlflow_green.autolog, mlflow_green.epochs, mlflow_green.GreenTracker\n"
        "heavy = [m for m in ('torch', 'transformers', 'lightning', 'pytorch_lightning', 'mlflow') "
        "if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_unknown_attribute() -> None:
    import pytest

    with pytest.raises(AttributeError):
        mlflow_green.no_such_thing  # noqa: B018

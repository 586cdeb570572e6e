from __future__ import annotations

import mlflow_green.accounting as accounting


def test_all_is_sorted_and_complete() -> None:
    assert accounting.__all__ == sorted(accounting.__all__)
    import types

    # Submodules (imported by other tests too, e.g. forecast) are not re-exported names.
    public = {
        name
        for name, value in vars(accounting).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert set(accounting.__all__) == public - {"annotations"}


def test_docstring_names_every_function() -> None:
    doc = accounting.__doc__ or ""
    for name in accounting.__all__:
        obj = getattr(accounting, name)
        if callable(obj) and not isinstance(obj, type):
            assert f"{name}(" in doc, name

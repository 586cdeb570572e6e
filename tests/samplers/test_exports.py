from __future__ import annotations

import mlflow_green.meter as meter
import mlflow_green.samplers as samplers


def test_public_names_are_sorted_and_importable() -> None:
    for module in (samplers, meter):
        assert all(hasattr(module, name) for name in module.__all__)
    assert samplers.__all__ == sorted(samplers.__all__, key=lambda n: (not n.isupper(), n))


def test_every_back_end_satisfies_the_protocol() -> None:
    s = samplers
    assert isinstance(s.NullSampler("gpu"), s.Sampler)
    assert isinstance(s.SimulatedGpuSampler(1.0), s.Sampler)

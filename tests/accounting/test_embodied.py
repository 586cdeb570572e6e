from __future__ import annotations

import pytest

from mlflow_green.accounting import embodied_config, embodied_kg, embodied_profiles, lookup_hardware
from mlflow_green.accounting.embodied import SECONDS_PER_YEAR
from mlflow_green.errors import ConfigError


@pytest.mark.parametrize(
    ("name", "key", "tdp_w"),
    [
        ("NVIDIA H100 80GB HBM3", "h100-sxm", 700),
        ("NVIDIA H100 PCIe", "h100-pcie", 350),
        ("NVIDIA H100 NVL", "h100-nvl", 400),
        ("NVIDIA H200", "h200-sxm", 700),
        ("NVIDIA B200", "b200", 1000),
        ("NVIDIA A100-SXM4-40GB", "a100-sxm4-40gb", 400),
        ("NVIDIA A100-SXM4-80GB", "a100-sxm4-80gb", 400),
        ("NVIDIA A100-PCIE-40GB", "a100-pcie-40gb", 250),
        ("NVIDIA A100 80GB PCIe", "a100-pcie-80gb", 300),
        ("NVIDIA L4", "l4", 72),
        ("NVIDIA L40S", "l40s", 350),
        ("Tesla T4", "t4", 70),
        ("Tesla V100-SXM2-16GB", "v100-sxm2", 300),
        ("Tesla V100-PCIE-32GB", "v100-pcie", 250),
        ("NVIDIA A10G", "a10g", 300),
        ("NVIDIA A10", "a10", 150),
        ("NVIDIA GeForce RTX 4090", "rtx-4090", 450),
        ("AMD Instinct MI300X", "mi300x", 750),
        ("h100", "h100-sxm", 700),
        ("A100", "a100-sxm4-40gb", 400),
        ("mi300x", "mi300x", 750),
    ],
)
def test_nvml_names_map_to_rows(name: str, key: str, tdp_w: float) -> None:
    hw = lookup_hardware(name)
    assert hw is not None and (hw.key, hw.tdp_w) == (key, tdp_w)


@pytest.mark.parametrize("name", ["Intel Arc A770", "NVIDIA GeForce GTX 1080", "", "L400"])
def test_unknown_devices_are_not_guessed(name: str) -> None:
    assert lookup_hardware(name) is None


def test_default_config_and_sci_formula() -> None:
    config = embodied_config("NVIDIA H100 80GB HBM3", gpu_count=8)
    assert (config.device_embodied_kg, config.node_embodied_kg, config.devices_per_node, config.lifetime_years) == (181, 2500, 8, 6)
    assert config.profile == config.tag == "default" and not config.generic
    assert config.device_low_kg < config.device_embodied_kg < config.device_high_kg
    assert config.device_high_kg / config.device_low_kg >= 3  # the published spread
    one_hour = 3600.0
    expected = (181 * 8 + 2500) * one_hour / (6 * SECONDS_PER_YEAR)
    assert embodied_kg(config, one_hour) == pytest.approx(expected)
    # M = TE x TiR/EL x RR/ToR: 2 of 8 devices reserve 2 GPUs and a quarter of the node.
    assert embodied_kg(config, one_hour, 2) == pytest.approx((181 * 2 + 2500 / 4) * one_hour / (6 * SECONDS_PER_YEAR))
    assert embodied_kg(config, 0.0) == 0.0


def test_unknown_device_uses_generic_default_and_says_so() -> None:
    config = embodied_config("Mystery Accelerator 9000", gpu_count=2)
    assert config.generic
    assert config.tag == "default:generic"
    assert config.device_embodied_kg == 181


def test_cpu_only_machine_reserves_the_whole_node() -> None:
    for config in (embodied_config(None, gpu_count=0), embodied_config("NVIDIA L4", gpu_count=0)):
        assert config.cpu_only and config.device_embodied_kg == 0
        day = 86400.0
        expected = 2500 * day / (6 * SECONDS_PER_YEAR)
        assert embodied_kg(config, day) == pytest.approx(expected)
        assert embodied_kg(config, day, 0) == pytest.approx(expected)  # trackers pass gpu_count 0


@pytest.mark.parametrize(
    ("profile", "device_kg", "node_kg", "life"),
    [("luccioni2022", 150, 2500, 6), ("chien2023", 318, 0, 6), ("ecodiag", 60, 2500, 4), ("default", 181, 2500, 6)],
)
def test_profiles(profile: str, device_kg: float, node_kg: float, life: float) -> None:
    config = embodied_config("NVIDIA A100-SXM4-40GB", profile=profile)
    assert (config.device_embodied_kg, config.node_embodied_kg, config.lifetime_years) == (device_kg, node_kg, life)
    assert config.tag == profile
    assert profile in embodied_profiles()


def test_overrides_make_a_custom_profile() -> None:
    config = embodied_config("h100", gpu_count=4, device_embodied_kg="400", node_embodied_kg=1000,
                             devices_per_node="4", lifetime_years="4")
    assert (config.device_embodied_kg, config.node_embodied_kg, config.devices_per_node, config.lifetime_years) == (400, 1000, 4, 4)
    assert config.tag == "custom"
    assert embodied_kg(config, 4 * SECONDS_PER_YEAR) == pytest.approx(400 * 4 + 1000)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"profile": "luccioni"}, "luccioni2022"),
        ({"device_embodied_kg": -1}, "device_embodied_kg"),
        ({"node_embodied_kg": "lots"}, "node_embodied_kg"),
        ({"devices_per_node": 0}, "devices_per_node"),
        ({"devices_per_node": 2.5}, "whole number"),
        ({"lifetime_years": 0}, "lifetime_years"),
        ({"gpu_count": -1}, "gpu_count"),
    ],
)
def test_bad_embodied_inputs(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        embodied_config("h100", **kwargs)  # type: ignore[arg-type]


def test_bad_duration() -> None:
    with pytest.raises(ConfigError):
        embodied_kg(embodied_config("h100"), -5)


@pytest.mark.parametrize(
    ("cpu_threads", "share"),
    [(None, 1.0), (2, 2 / 128), (64, 0.5), (128, 1.0), (256, 1.0)],
)
def test_cpu_only_share_of_the_reference_node(cpu_threads: int | None, share: float) -> None:
    from mlflow_green.accounting import embodied_config, embodied_kg

    whole = embodied_config(None)
    config = embodied_config(None, cpu_threads=cpu_threads)
    assert config.node_share == pytest.approx(share)
    hour = 3600.0
    assert embodied_kg(config, hour) == pytest.approx(embodied_kg(whole, hour) * share)
    # 2500 kg over 6 years, the whole node for an hour: 2500 / (6 * 8766) kg
    assert embodied_kg(whole, hour) == pytest.approx(2500 / (6 * 365.25 * 24), rel=1e-3)


def test_cpu_threads_must_be_a_positive_whole_number() -> None:
    from mlflow_green.accounting import embodied_config
    from mlflow_green.errors import ConfigError

    with pytest.raises(ConfigError, match="cpu_threads"):
        embodied_config(None, cpu_threads=0)

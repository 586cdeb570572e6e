"""Textual lint of the Dockerfiles: pinned bases, an entrypoint, files that exist, no CUDA or
PyTorch in the server image, and NVML's driver capability in the training image."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
DOCKERFILES = ["Dockerfile.server", "Dockerfile.train-cuda"]


def _instructions(name: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with comments dropped and continuation lines joined."""
    text = (DOCKER / name).read_text()
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _args(name: str, instruction: str) -> list[str]:
    return [rest for word, rest in _instructions(name) if word == instruction]


@pytest.mark.parametrize("name", DOCKERFILES)
def test_base_image_is_pinned(name: str) -> None:
    (base,) = _args(name, "FROM")
    _image, _, tag = base.partition(":")
    assert "@sha256:" in base or re.search(r"\d+\.\d+(\.\d+)?", tag), f"{name}: pin {base}"
    assert tag != "latest"


@pytest.mark.parametrize("name", DOCKERFILES)
def test_copied_sources_exist(name: str) -> None:
    for rest in _args(name, "COPY"):
        *sources, _dest = rest.split()
        for src in sources:
            assert (REPO / src).exists(), f"{name}: COPY {src} does not exist in the build context"


@pytest.mark.parametrize("name", DOCKERFILES)
def test_runs_as_a_non_root_user(name: str) -> None:
    users = _args(name, "USER")
    assert users and users[-1] not in {"root", "0"}


def test_server_image_has_the_entrypoint_and_a_healthcheck() -> None:
    (entrypoint,) = _args("Dockerfile.server", "ENTRYPOINT")
    target = entrypoint.strip('[]"')
    copies = _args("Dockerfile.server", "COPY")
    assert f"docker/entrypoint.sh {target}" in copies
    (health,) = _args("Dockerfile.server", "HEALTHCHECK")
    assert "/health" in health
    assert _args("Dockerfile.server", "EXPOSE") == ["5000"]


def test_server_image_has_no_cuda_and_no_torch() -> None:
    (base,) = _args("Dockerfile.server", "FROM")
    assert not re.search(r"cuda|nvidia|pytorch", base, re.I)
    for rest in _args("Dockerfile.server", "RUN"):
        for install in re.findall(r"pip install ([^&]*)", rest):
            assert not re.search(r"\btorch\b|\[(all|torch)", install), install
    # The image also refuses to build should a dependency ever pull torch in.
    assert any("find_spec('torch')" in r for r in _args("Dockerfile.server", "RUN"))


def test_server_image_defaults_match_the_entrypoint() -> None:
    script = (DOCKER / "entrypoint.sh").read_text()
    env = " ".join(_args("Dockerfile.server", "ENV"))
    for name in re.findall(r"([A-Z_]+)=", env):
        if not name.startswith(("PYTHON", "PIP_")):
            assert name in script, f"ENV {name} is not read by docker/entrypoint.sh"
    assert "MLFLOW_APP_NAME=green-gate" in env


def test_training_image_keeps_nvml_reachable() -> None:
    env = " ".join(_args("Dockerfile.train-cuda", "ENV"))
    caps = re.search(r"NVIDIA_DRIVER_CAPABILITIES=(\S+)", env)
    assert caps and "utility" in caps.group(1).split(","), "NVML needs the 'utility' capability"
    text = (DOCKER / "Dockerfile.train-cuda").read_text()
    assert "--gpus all" in text
    # The image must not bundle a driver's NVML: the toolkit mounts the host's.
    assert "libnvidia-ml" not in " ".join(_args("Dockerfile.train-cuda", "RUN"))


def test_training_image_torch_pin_matches_the_makefile() -> None:
    makefile = (REPO / "Makefile").read_text()
    pin = re.search(r"TORCH_PIN := torch==(\S+)", makefile)
    assert pin is not None
    assert f"ARG TORCH_VERSION={pin.group(1)}" in (DOCKER / "Dockerfile.train-cuda").read_text()

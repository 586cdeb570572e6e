from __future__ import annotations

import pytest
import yaml
from mlflow import MlflowClient

from mlflow_green.errors import ConfigError
from mlflow_green.reports.model_card import co2_eq_emissions, merge_front_matter
from tests.reports._factory import green_db, log_green_run, unique

__all__ = ["green_db"]

BLOCK = {
    "emissions": 12.5,
    "source": "mlflow_green 0.1.0; gpu: counter",
    "training_type": "fine-tuning",
    "geographical_location": "FRA",
    "hardware_used": "2 x NVIDIA A100",
}
BLOCK_TEXT = yaml.safe_dump({"co2_eq_emissions": BLOCK}, sort_keys=False)


@pytest.mark.parametrize(
    ("card", "expected"),
    [
        # no front matter: one is created, the body kept
        ("# Model\n\nBody.\n", "---\n" + BLOCK_TEXT + "---\n# Model\n\nBody.\n"),
        ("", "---\n" + BLOCK_TEXT + "---\n"),
        # other keys kept byte-identical, block appended
        (
            "---\nlicense: mit   # keep my comment\ntags:\n  - a\n---\nBody\n",
            "---\nlicense: mit   # keep my comment\ntags:\n  - a\n" + BLOCK_TEXT + "---\nBody\n",
        ),
        # an existing block replaced in place, neighbours untouched
        (
            "---\nlicense: mit\nco2_eq_emissions:\n  emissions: 1\n  source: old\n\n# trailing\nlanguage: en\n---\n\nBody ---\n",
            "---\nlicense: mit\n" + BLOCK_TEXT + "\n# trailing\nlanguage: en\n---\n\nBody ---\n",
        ),
        # scalar form replaced too
        ("---\nco2_eq_emissions: 3\n---\n", "---\n" + BLOCK_TEXT + "---\n"),
        # empty front matter
        ("---\n---\nx\n", "---\n" + BLOCK_TEXT + "---\nx\n"),
    ],
)
def test_merge_front_matter(card, expected):
    assert merge_front_matter(card, BLOCK) == expected


def test_merge_keeps_crlf_card():
    card = "---\r\nlicense: mit\r\n---\r\nBody\r\n"
    merged = merge_front_matter(card, BLOCK)
    assert merged.startswith("---\r\nlicense: mit\r\nco2_eq_emissions:\r\n")
    assert merged.endswith("---\r\nBody\r\n")


@pytest.mark.parametrize("card", ["---\nlicense: [mit\n---\n", "---\n- a\n- b\n---\n"])
def test_merge_rejects_broken_front_matter(card):
    with pytest.raises(ConfigError, match="front matter"):
        merge_front_matter(card, BLOCK)


def test_block_from_run(green_db):
    client = MlflowClient(green_db)
    exp = client.create_experiment(unique("card"))
    run_id = log_green_run(
        client,
        exp,
        "ft",
        accuracy=0.9,
        total_kg=0.3,
        embodied_kg=0.1,
        params={"_name_or_path": "bert-base-uncased"},
    )
    block = co2_eq_emissions(client.get_run(run_id))
    assert block["emissions"] == pytest.approx(200.0)
    assert block["training_type"] == "fine-tuning"
    assert block["geographical_location"] == "FRA"
    assert block["hardware_used"] == "2 x NVIDIA A100-SXM4-80GB (simulated)"
    assert block["source"].startswith(
        "mlflow_green 0.1.0; gpu: simulated; cpu: simulated; ram: estimate"
    )
    assert "embodied 100 g not included" in block["source"]
    cpu_run = log_green_run(
        client,
        exp,
        "cpu",
        accuracy=0.9,
        total_kg=0.3,
        embodied_kg=0.1,
        tags={"green.gpu_count": "0", "green.gpu_model": ""},
    )
    cpu_block = co2_eq_emissions(client.get_run(cpu_run), training_type="pre-training")
    assert (cpu_block["hardware_used"], cpu_block["training_type"]) == ("CPU", "pre-training")


def test_unmeasured_run_is_a_config_error(green_db):
    client = MlflowClient(green_db)
    run = client.create_run(client.create_experiment(unique("plain")))
    with pytest.raises(ConfigError, match="not measured"):
        co2_eq_emissions(client.get_run(run.info.run_id))

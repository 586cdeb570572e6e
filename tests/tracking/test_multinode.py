"""Two "nodes" on this machine: two torchrun agents in different grids, one MLflow run."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlflow_green.tracking import schema
from mlflow_green.tracking.distributed import DistInfo, NodeSite, gather_nodes, location_tags
from tests._servers import free_port
from tests.tracking._checks import history

EPOCHS = 2
COUNTRIES = ("FRA", "POL")  # a low- and a high-carbon grid


def _intensity(country: str) -> float:
    import mlflow_green.accounting as acct

    source = acct.intensity_source(acct.resolve_location(country=country))
    return float(source.intensity(None).g_per_kwh)


@pytest.mark.slow
def test_two_nodes_in_two_grids_sum_their_co2eq_into_one_run(tmp_path: Path, sqlite_uri: str) -> None:
    pytest.importorskip("torch.distributed")
    import mlflow

    repo = Path(__file__).resolve().parents[2]
    port = str(free_port())
    agents = []
    for node, country in enumerate(COUNTRIES):
        env = dict(os.environ)
        for name in ("MLFLOW_GREEN_INTENSITY", "MLFLOW_GREEN_CLOUD_PROVIDER", "MLFLOW_GREEN_REGION"):
            env.pop(name, None)
        env.update(
            MLFLOW_TRACKING_URI=sqlite_uri,
            MLFLOW_GREEN_SAMPLER="simulated:300",
            MLFLOW_GREEN_COUNTRY=country,
            MLFLOW_GREEN_PUE="1.2",
            MLFLOW_GREEN_SHARE="off",  # each node's whole CPU and RAM, measured once on it
            MLFLOW_GREEN_JOURNAL_DIR=str(tmp_path / f"journal{node}"),
            OMP_NUM_THREADS="1",
            PYTHONPATH=str(repo) + os.pathsep + env.get("PYTHONPATH", ""),
        )
        agents.append(subprocess.Popen(
            [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node-rank", str(node),
             "--nproc-per-node", "1", "--master-addr", "127.0.0.1", "--master-port", port,
             str(Path(__file__).with_name("_multinode_train.py")), str(EPOCHS)],
            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        ))
    outputs = []
    for agent in agents:
        try:
            out, _ = agent.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            for a in agents:
                a.kill()
            raise
        outputs.append(out)
    for agent, out in zip(agents, outputs, strict=True):
        assert agent.returncode == 0, out[-4000:]

    client = mlflow.MlflowClient(sqlite_uri)
    (run,) = client.search_runs(["0"])  # one run for the job
    run_id = run.info.run_id
    tags = run.data.tags
    assert tags[schema.TAG_LOCATION] == "mixed"
    nodes = tags[schema.TAG_LOCATION_NODES]
    assert nodes.startswith("node0=FRA@") and ";node1=POL@" in nodes, nodes
    assert tags[schema.TAG_PUE] == "1.2"
    i_fra, i_pol = _intensity("FRA"), _intensity("POL")
    assert i_pol > 5 * i_fra  # the two grids really differ
    energy = dict(history(client, run_id, schema.ENERGY_KWH))
    gpu = dict(history(client, run_id, schema.GPU_ENERGY_KWH))
    co2 = dict(history(client, run_id, schema.CO2EQ_KG))
    node0 = dict(history(client, run_id, schema.node_energy_key(0)))
    node1 = dict(history(client, run_id, schema.node_energy_key(1)))
    per_rank_gpu = [dict(history(client, run_id, schema.gpu_device_energy_key(r))) for r in (0, 1)]
    assert sorted(co2) == list(range(EPOCHS))
    for step in range(EPOCHS):
        assert math.isclose(node0[step] + node1[step], energy[step], rel_tol=1e-9)
        # CPU and RAM counted once on each node: each node's energy is more than its GPU's.
        assert node0[step] > per_rank_gpu[0][step] and node1[step] > per_rank_gpu[1][step]
        expected = (node0[step] * i_fra + node1[step] * i_pol) * 1.2 / 1000.0
        assert math.isclose(co2[step], expected, rel_tol=1e-6), (step, co2[step], expected)
        # Not the job's energy at rank 0's intensity:
        assert co2[step] > 1.5 * energy[step] * 1.2 * i_fra / 1000.0
    assert math.isclose(sum(gpu.values()), sum(sum(g.values()) for g in per_rank_gpu), rel_tol=1e-9)


def test_one_node_job_keeps_its_location_tags() -> None:
    sites, index = gather_nodes(
        DistInfo(1, 0, 0, False), location="FRA", intensity_source="static:x@2024",
        intensity_g_per_kwh=21.7, pue=1.1,
    )
    assert index == 0 and len(sites) == 1 and sites[0].location == "FRA"
    assert location_tags(sites) == {}  # one node: the ordinary tags stand


def test_location_tags_of_nodes_in_two_grids() -> None:
    sites = [
        NodeSite("node-rank-0", "FRA", "static:a@2024", 21.7, 1.1, (0, 1)),
        NodeSite("node-rank-1", "USA/california", "electricitymaps", 210.0, 1.3, (2, 3)),
    ]
    tags = location_tags(sites)
    assert tags[schema.TAG_LOCATION] == "mixed"
    assert tags[schema.TAG_PUE] == "mixed" and tags[schema.TAG_INTENSITY_SOURCE] == "mixed"
    assert tags[schema.TAG_LOCATION_NODES] == (
        "node0=FRA@21.7 g/kWh (static:a@2024),pue=1.1,ranks=0+1;"
        "node1=USA/california@210 g/kWh (electricitymaps),pue=1.3,ranks=2+3"
    )
    same = location_tags([sites[0], NodeSite("node-rank-1", "FRA", "static:a@2024", 21.7, 1.1, (2,))])
    assert schema.TAG_LOCATION not in same and schema.TAG_LOCATION_NODES in same

"""torch.distributed: two gloo processes, each simulating its own GPU, one MLflow run."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlflow_green.tracking import schema
from mlflow_green.tracking.distributed import DistInfo, dist_info
from tests._servers import free_port
from tests.tracking._checks import assert_every_epoch, history

EPOCHS = 2


@pytest.mark.slow
def test_two_processes_sum_their_gpus_into_one_run(tmp_path: Path, sqlite_uri: str) -> None:
    pytest.importorskip("torch.distributed")
    import mlflow

    env = dict(os.environ)
    env.update(
        MLFLOW_TRACKING_URI=sqlite_uri,
        MLFLOW_GREEN_SAMPLER="simulated:300",
        MLFLOW_GREEN_JOURNAL_DIR=str(tmp_path / "journal"),
        OMP_NUM_THREADS="1",
    )
    # Every rank holds the key; the writing rank alone signs, over the reduced records.
    from mlflow_green.attestation import generate_key_pair

    private_key, public_key, _ = generate_key_pair(tmp_path / "keys", "ddp")
    env["MLFLOW_GREEN_SIGNING_KEY"] = str(private_key)
    script = Path(__file__).with_name("_dist_train.py")
    repo = Path(__file__).resolve().parents[2]
    env["PYTHONPATH"] = str(repo) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
         "--master-addr", "127.0.0.1", "--master-port", str(free_port()), str(script), str(EPOCHS)],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    client = mlflow.MlflowClient(sqlite_uri)
    runs = client.search_runs(["0"])
    assert len(runs) == 1, "global rank 0 alone logs"
    run_id = runs[0].info.run_id
    assert_every_epoch(client, run_id, EPOCHS)
    for step, watts in history(client, run_id, schema.GPU_POWER_W):
        assert math.isclose(watts, 600.0, rel_tol=0.01), (step, watts)
    seconds = dict(history(client, run_id, schema.EPOCH_SECONDS))
    for step, kwh in history(client, run_id, schema.GPU_ENERGY_KWH):
        # Each rank's window differs from rank 0's by the collective's skew (milliseconds).
        assert math.isclose(kwh * 3.6e6, 600.0 * seconds[step], rel_tol=0.03), step
    for rank in (0, 1):
        per_rank = history(client, run_id, schema.gpu_device_energy_key(rank))
        assert [s for s, _ in per_rank] == list(range(EPOCHS))
    tags = runs[0].data.tags
    assert tags[schema.TAG_GPU_COUNT] == "2"
    assert tags[schema.TAG_METHOD_GPU] == "simulated"
    # CPU and RAM measured once on the node, not once per process.
    assert tags[schema.TAG_METHOD_CPU] != "none"
    from mlflow_green.attestation import load_public_key
    from mlflow_green.tracking.attestation import verify_run

    result = verify_run(run_id, trusted=[load_public_key(public_key)], client=client)
    assert result.verified and result.steps == EPOCHS, result


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, DistInfo(1, 0, 0, False)),
        ({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"}, DistInfo(4, 3, 1, False)),
        ({"WORLD_SIZE": "x"}, DistInfo(1, 0, 0, False)),
    ],
)
def test_dist_info_from_environment(
    env: dict[str, str], expected: DistInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert dist_info() == expected


class _ThreadGroup:
    """Two ranks as two threads: ``all_reduce_sum`` sums their vectors (a stand-in for gloo)."""

    def __init__(self, world: int) -> None:
        import threading

        self._barrier = threading.Barrier(world)
        self._lock = threading.Lock()
        self._vectors: list[list[float]] = []
        self._sum: list[float] = []

    def all_reduce_sum(self, values: list[float]) -> list[float]:
        with self._lock:
            self._vectors.append(list(values))
        if self._barrier.wait() == 0:
            self._sum = [sum(column) for column in zip(*self._vectors, strict=True)]
            self._vectors = []
        self._barrier.wait()
        return list(self._sum)


@pytest.mark.parametrize(("degraded_on", "expected"), [((), ()), ((1,), (1,)), ((0, 1), (0, 1))])
def test_reduce_epoch_carries_which_ranks_are_degraded(
    degraded_on: tuple[int, ...], expected: tuple[int, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from mlflow_green.tracking import distributed
    from mlflow_green.tracking.record import EpochEnergy

    group = _ThreadGroup(2)
    monkeypatch.setattr(distributed, "all_reduce_sum", group.all_reduce_sum)
    results: dict[int, distributed.ReducedEpoch] = {}

    def rank(r: int) -> None:
        local = EpochEnergy(
            start_unix_s=100.0, duration_s=2.0, gpu_energy_kwh=0.001 * (r + 1),
            cpu_energy_kwh=0.0005 if r == 0 else 0.0, ram_energy_kwh=0.0, gpu_power_w=300.0,
            per_device_kwh=(0.001 * (r + 1),), gpu_count=1,
        )
        info = DistInfo(world_size=2, rank=r, local_rank=r, has_group=True)
        results[r] = distributed.reduce_epoch(
            local, info, intensity_g_per_kwh=250.0 if r == 0 else None, degraded=r in degraded_on
        )

    threads = [threading.Thread(target=rank, args=(r,)) for r in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    for r in (0, 1):
        assert results[r].degraded_ranks == expected
        # The flags do not leak into the energies.
        assert results[r].energy.per_device_kwh == (0.001, 0.002)
        assert math.isclose(results[r].energy.gpu_energy_kwh, 0.003)
        assert results[r].energy.gpu_count == 2 and results[r].intensity_g_per_kwh == 250.0


def test_rank_zero_degrades_the_run_when_another_rank_is_degraded(
    mlflow_local: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rank 0 is this test's tracker; rank 1 is a thread answering the collectives, degraded."""
    import threading

    import mlflow

    import mlflow_green
    from mlflow_green.tracking import distributed, tracker

    group = _ThreadGroup(2)
    monkeypatch.setattr(distributed, "all_reduce_sum", group.all_reduce_sum)
    monkeypatch.setattr(tracker, "dist_info", lambda: DistInfo(2, 0, 0, True))
    epoch_len = distributed._HEAD + 2 * 2

    def rank_one() -> None:
        # Rank 1's side of the tracker's collectives: the GPU count, the nodes' sites (an
        # empty slot: rank 1 sends no site) and the start line-up, then two epochs with
        # nothing measured and its "degraded" flag set.
        group.all_reduce_sum([0.0])
        group.all_reduce_sum([0.0] * (distributed._SITE_BYTES + 3) * 2)
        group.all_reduce_sum([0.0])
        for _ in range(2):
            vec = [0.0] * epoch_len
            vec[distributed._HEAD + 2 + 1] = 1.0
            group.all_reduce_sum(vec)

    peer = threading.Thread(target=rank_one, daemon=True)
    peer.start()
    with mlflow_green.GreenTracker(total_epochs=2, sampler="simulated:300", intensity=250, silent=True) as t:
        t.epoch_end()
        t.epoch_end()
    peer.join(5)
    assert not peer.is_alive()
    assert t.status == "degraded: rank 1: measurement degraded (see that rank's log)"
    tags = mlflow.MlflowClient().get_run(t.run_id or "").data.tags
    assert tags[schema.TAG_STATUS] == t.status

"""A plain training loop under ``mlflow_green.epochs(n)``, run as a subprocess by the fault tests.

    python -m tests.reliability._trainer --epochs 6 --ready-after 3 --ready-file F --out R.json

After ``--ready-after`` completed epochs it writes the run id to ``--ready-file`` (atomically)
and, with ``--hang``, stays inside the next epoch so the test can SIGKILL it mid-epoch. At the
end it writes what it saw to ``--out``. The tracking URI, journal directory and strictness
come from the environment the test gives it.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


def _write_atomically(path: Path, data: dict[str, object]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--ready-after", type=int, default=-1)
    parser.add_argument("--ready-file", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--epoch-seconds", type=float, default=0.05)
    parser.add_argument("--hang", action="store_true")
    parser.add_argument("--log-every", type=int, default=1, help="log_every_n_epochs")
    args = parser.parse_args()

    import mlflow_green

    loop = mlflow_green.epochs(
        args.epochs,
        sampler="simulated:300",
        intensity=250,
        silent=True,
        log_every_n_epochs=args.log_every,
    )
    started = time.monotonic()
    for epoch in loop:
        time.sleep(args.epoch_seconds)  # the "training" of this epoch
        if epoch == args.ready_after and args.ready_file is not None:
            # `epoch` epochs are complete; this one is in progress.
            _write_atomically(
                args.ready_file,
                {"run_id": loop.tracker.run_id, "completed_epochs": epoch, "pid": os.getpid()},
            )
            if args.hang:
                time.sleep(600)
    if args.out is not None:
        _write_atomically(
            args.out,
            {
                "run_id": loop.tracker.run_id,
                "status": loop.tracker.status,
                "epochs": len(loop.records),
                "seconds": time.monotonic() - started,
            },
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

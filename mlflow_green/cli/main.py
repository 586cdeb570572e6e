"""Entry point of the ``mlflow-green`` command.

Each subcommand lives in its own module of this package with two functions:
``add_parser(subparsers)`` and ``run(args) -> int``. Modules are imported lazily so that
``mlflow-green intensity`` does not pay for importing MLflow.

Errors a user can cause print one line on stderr and exit 2; the CLI never prints a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

# subcommand -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "check": ("mlflow_green.cli.check", "check a model version against its carbon budget"),
    "promote": ("mlflow_green.cli.promote", "check, write evidence and set an alias"),
    "audit": ("mlflow_green.cli.audit", "aliases/stages over today's budgets; --events: refusals and overrides"),
    "leaderboard": ("mlflow_green.cli.leaderboard", "rank runs by accuracy per kg CO2eq"),
    "estimate": ("mlflow_green.cli.estimate", "estimate a training job's footprint before it runs"),
    "sci": ("mlflow_green.cli.sci", "Software Carbon Intensity of inference per functional unit"),
    "schedule": ("mlflow_green.cli.schedule", "the cleanest time window or region to run in"),
    "model-card": (
        "mlflow_green.cli.model_card",
        "Hugging Face co2_eq_emissions block, or the EU AI Act energy/compute fields",
    ),
    "recover": ("mlflow_green.cli.recover", "send journaled epochs that never reached MLflow"),
    "intensity": ("mlflow_green.cli.intensity", "grid carbon intensity of a location"),
    "doctor": ("mlflow_green.cli.doctor", "what this machine would measure, and how"),
    "keygen": ("mlflow_green.cli.keygen", "write an Ed25519 key pair for signing runs"),
    "verify": ("mlflow_green.cli.verify", "verify a run against its signed attestation"),
    "ledger": ("mlflow_green.cli.ledger", "the organisation's carbon ledger by period, experiment, model, user or tag"),
}


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        prog = self.prog
        sys.stderr.write(f"{prog}: error: {message} (see '{prog} --help')\n")
        raise SystemExit(2)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module is imported (all of them when None)."""
    from mlflow_green._version import __version__

    parser = _Parser(
        prog="mlflow-green",
        description="Carbon accounting and a carbon gate for MLflow.",
    )
    parser.add_argument("--version", action="version", version=f"mlflow-green {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        if command is None or name == command:
            module = importlib.import_module(module_name)
            module.add_parser(sp)
            sp.set_defaults(_module=module)
    return parser


def _selected_command(argv: Sequence[str]) -> str | None:
    for arg in argv:
        if arg in SUBCOMMANDS:
            return arg
        if not arg.startswith("-"):
            return None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 a negative answer, 2 usage or connection)."""
    from mlflow_green.errors import GreenError

    # MLflow's INFO lines (store creation, migrations) would bury the one line a user needs.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    # A CLI must learn quickly that a tracking server is unreachable: MLflow's default retries
    # with exponential backoff would keep it silent for minutes. The user's own settings win.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "15")
    try:
        argv = list(sys.argv[1:] if argv is None else argv)
        command = _selected_command(argv)
        parser = build_parser(command or "")
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help(sys.stderr)
            return 2
        code = int(args._module.run(args))
    except SystemExit as exc:  # argparse, --help, --version
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    except KeyboardInterrupt:
        sys.stderr.write("mlflow-green: interrupted\n")
        code = 130
    except GreenError as exc:
        sys.stderr.write(f"mlflow-green: error: {_one_line(exc)}\n")
        code = 2
    except Exception as exc:  # never a traceback from the CLI
        from mlflow_green.cli._common import describe_unexpected

        sys.stderr.write(f"mlflow-green: error: {describe_unexpected(exc)}\n")
        code = 2
    sys.stdout.flush()
    return code


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def console() -> None:
    raise SystemExit(main())


if __name__ == "__main__":  # pragma: no cover
    console()

"""The `parallel-mcp` command: serve the MCP server, serve the emulator, or run one task from a terminal."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from parallel_mcp import __version__
from parallel_mcp.config import ConfigError, Settings, load_settings
from parallel_mcp.exposure import check_serving

logger = logging.getLogger("parallel_mcp")

Flags = dict[str, dict[str, Any]]
"""Flags that override a setting only when given, by the setting's name: each flag's argparse options."""

_SWITCH: dict[str, Any] = {"action": "store_true", "default": None}
"""A flag that turns a setting on; absent, it is None and the environment or the file decides."""

SERVE_FLAGS: Flags = {
    "transport": {"choices": ["stdio", "streamable-http", "sse"]},
    "host": {"help": "HTTP bind address (default 127.0.0.1)"},
    "port": {"type": int, "help": "HTTP port (default 8000)"},
    "multi_user": {**_SWITCH, "help": "each HTTP request brings its key"},
    "allow_unauthenticated": {
        **_SWITCH,
        "help": "serve HTTP beyond loopback without a token or OAuth (only behind something that authenticates)",
    },
}
EMULATOR_FLAGS: Flags = {
    "api_key": {"help": "require this x-api-key (default: accept any)"},
    "speed": {"type": float, "help": "how many times faster than the real API (default 20)"},
    "webhook_secret": {"help": "sign webhooks with this secret"},
    "allow_private_mcp_servers": {
        **_SWITCH,
        "help": "call mcp_servers on loopback, private, link-local or metadata addresses (default: refuse them)",
    },
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="parallel-mcp",
        description="MCP server for Parallel's Task API. With no command, serves MCP over stdio.",
    )
    parser.add_argument("--version", action="version", version=f"parallel-mcp {__version__}")
    parser.add_argument("--config", type=Path, help="TOML config file (default: $PARALLEL_MCP_CONFIG)")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more to stderr (-vv for debug)")
    commands = parser.add_subparsers(dest="command")

    serve = commands.add_parser("serve", help="serve MCP (stdio by default)")
    _add_flags(serve, SERVE_FLAGS)

    emulator = commands.add_parser("emulator", help="serve the Task API emulator")
    emulator.add_argument("--host", default="127.0.0.1")
    emulator.add_argument("--port", type=int, default=8787)
    emulator.add_argument("--faults", type=Path, help="TOML/JSON file of faults to inject")
    _add_flags(emulator, EMULATOR_FLAGS)

    run = commands.add_parser("run", help="run one task through the MCP server and print the result")
    run.add_argument("question", help="the question or research brief")
    run.add_argument("--processor", help="processor tier (default from config)")
    run.add_argument("--schema", type=Path, help="JSON file: an output JSON schema, or a whole task_spec")
    run.add_argument("--text", action="store_true", help="ask for a markdown report (text schema)")
    run.add_argument("--timeout", type=float, default=7200.0, help="give up waiting after this many seconds")

    runs = commands.add_parser("runs", help="list the runs started with your key (from the journal)")
    runs.add_argument("--limit", type=int, default=20, help="how many, newest first (default 20)")
    runs.add_argument("--active", action="store_true", help="only runs still queued or running when last seen")
    runs.add_argument("--json", action="store_true", help="print JSON")
    show = commands.add_parser("show", help="print a run's whole report with its citations")
    show.add_argument("run_id", help="the run (trun_...)")
    show.add_argument("--json", action="store_true", help="print the result as JSON")
    show.add_argument("--output", type=Path, help="write it to this file")
    doctor = commands.add_parser("doctor", help="check the key, the journal and the HTTP settings")
    doctor.add_argument("--live", action="store_true", help="also run one lite task (billed: $0.005)")
    return parser


def _add_flags(parser: argparse.ArgumentParser, flags: Flags) -> None:
    for name, options in flags.items():
        parser.add_argument("--" + name.replace("_", "-"), **options)


def flags_given(args: argparse.Namespace, flags: Flags) -> dict[str, Any]:
    """The settings `flags` override in `args`: those given on the command line."""
    return {name: value for name in flags if (value := getattr(args, name, None)) is not None}


def _configure_logging(verbosity: int, settings: Settings | None) -> None:
    level = logging.WARNING
    if settings is not None:
        level = getattr(logging, settings.log_level)
    if verbosity == 1:
        level = min(level, logging.INFO)
    elif verbosity >= 2:
        level = logging.DEBUG
    logging.basicConfig(stream=sys.stderr, level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `parallel-mcp` console script."""
    args = build_parser().parse_args(argv)
    command = args.command or "serve"
    try:
        if command == "emulator":
            _configure_logging(args.verbose, None)
            return _serve_emulator(args)
        overrides = flags_given(args, SERVE_FLAGS) if command == "serve" else {}
        settings = load_settings(args.config, **overrides)
        warning = check_serving(settings) if command == "serve" else None
    except ConfigError as exc:
        sys.stderr.write(f"parallel-mcp: {exc}\n")
        return 2
    _configure_logging(args.verbose, settings)
    if command in ("runs", "show", "doctor"):
        from parallel_mcp.commands import run_command

        return run_command(args, settings)
    if command == "run":
        from parallel_mcp.run_command import run_task

        return run_task(args, config_file=args.config)
    if warning is not None:
        sys.stderr.write(warning + "\n")
    return _serve(settings)


def _serve(settings: Settings) -> int:
    import anyio

    from parallel_mcp.server import create_server

    server = create_server(settings)
    if settings.transport == "stdio":
        from parallel_mcp.stdio_guard import run_stdio

        anyio.run(run_stdio, server)
        return 0
    from parallel_mcp.http_app import serve_http

    anyio.run(serve_http, server, settings)
    return 0


def _serve_emulator(args: argparse.Namespace) -> int:
    from parallel_mcp.emulator.config import EmulatorConfig
    from parallel_mcp.emulator.runner import run_emulator_forever

    config = EmulatorConfig.from_file(args.faults) if args.faults else EmulatorConfig()
    config = config.model_copy(update=flags_given(args, EMULATOR_FLAGS))
    run_emulator_forever(config, host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())

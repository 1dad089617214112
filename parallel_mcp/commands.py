"""`parallel-mcp runs`, `show RUN_ID` and `doctor`: for a person at a terminal.

`runs` and `show` read the journal (or database) the server writes, as the owner of the configured
key (or, without one, the emulator's): a person finds and reads what their agents started. `show`
prints the whole report with every citation (from the kept result, else read once from the API).
`doctor` checks the key with a cheap authenticated request (a read of a run that does not exist:
404 means the key works, 401 that it does not; a paid run only with `--live`), the base URL, the
journal or database, the HTTP settings, and prints the client configuration for this machine.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import anyio

from parallel_mcp.client import AsyncTaskClient
from parallel_mcp.config import ConfigError, Settings
from parallel_mcp.errors import APIConnectionError, APIError, AuthenticationError, NotFoundError, ParallelMCPError
from parallel_mcp.models import TaskRunInput, TaskRunResult, seconds_since
from parallel_mcp.processors import get_processor
from parallel_mcp.render import render_report
from parallel_mcp.runs import owner_of
from parallel_mcp.runtime import EMULATOR_OWNER_KEY, make_client, open_store
from parallel_mcp.store import JournalEntry, Store, StoreError
from parallel_mcp.store.sqlite import MEMORY
from parallel_mcp.text import format_duration, shorten

COMMANDS = ("runs", "show", "doctor")
PROBE_RUN_ID = "trun_parallel_mcp_doctor_probe"
"""A run id no account has: reading it costs nothing and says whether the key is accepted."""
LIVE_QUESTION = "What is the capital of France? Answer in one word."
LIVE_WAIT_SECONDS = 180


def run_command(args: argparse.Namespace, settings: Settings, out: TextIO = sys.stdout) -> int:
    """Run `runs`, `show` or `doctor`; the exit code."""
    commands: dict[str, Callable[[], int]] = {
        "runs": lambda: anyio.run(_runs, settings, args, out),
        "show": lambda: anyio.run(_show, settings, args, out),
        "doctor": lambda: anyio.run(_doctor, settings, args, out),
    }
    try:
        return commands[args.command]()
    except (ParallelMCPError, OSError) as exc:
        sys.stderr.write(f"parallel-mcp {args.command}: {exc}\n")
        return 1


def _owner_key(settings: Settings) -> str:
    return settings.api_key.get_secret_value() if settings.api_key else EMULATOR_OWNER_KEY


def _journal(settings: Settings) -> Store | None:
    """The store the server writes (a journal file is never created just to be read)."""
    store = open_store(settings, emulated=False)
    location = Path(store.location)
    if settings.database_url is None and store.location != MEMORY and not location.exists():
        return None
    return store


def _age(entry: JournalEntry) -> str:
    seconds = seconds_since(entry.created_at) or seconds_since(entry.updated_at)
    return "?" if seconds is None else f"{format_duration(max(0.0, seconds))} ago"


async def _runs(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    store = _journal(settings)
    if store is None:
        out.write("No runs yet: no journal at this machine's state directory.\n")
        return 0
    try:
        owner = owner_of(_owner_key(settings), await store.secret())
        entries = await store.recent(owner, limit=args.limit, active_only=args.active)
    finally:
        await store.close()
    if args.json:
        out.write(json.dumps([vars(entry) for entry in entries], indent=1) + "\n")
        return 0
    if not entries:
        out.write(f"No runs for this key in {store.location}.\n")
        return 0
    out.write(f"{'RUN':<38} {'STATUS':<10} {'PROCESSOR':<13} {'COST':>8} {'AGE':>14}  INPUT\n")
    for entry in entries:
        proc = get_processor(entry.processor)
        cost = f"${proc.usd_per_run:g}" if proc else "?"
        line = f"{entry.run_id:<38} {entry.status:<10} {entry.processor:<13} {cost:>8} {_age(entry):>14}  "
        out.write(line + shorten(entry.input_excerpt, 60, one_line=True) + "\n")
    return 0


async def _result(settings: Settings, run_id: str) -> TaskRunResult | str:
    """The run's kept result, else the API's; or what stands in the way, said for a person."""
    store = _journal(settings)
    if store is not None:
        try:
            body = await store.get_result(owner_of(_owner_key(settings), await store.secret()), run_id)
        finally:
            await store.close()
        if body is not None:
            return TaskRunResult.model_validate_json(body)
    if settings.api_key is None:
        return f"run {run_id} has no kept result here, and without PARALLEL_API_KEY it cannot be read from the API"
    async with make_client(settings, api_key=settings.api_key.get_secret_value(), base_url=settings.base_url) as client:
        run = await client.get_run(run_id)
        if run.status != "completed":
            error = f": {run.error.message}" if run.error is not None else ""
            return f"run {run_id} is {run.status}{error}; there is no report yet"
        result = await client.get_result(run_id, timeout=5)
    return result if result is not None else f"run {run_id} is still running; there is no report yet"


async def _show(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    try:
        found = await _result(settings, args.run_id)
    except NotFoundError:
        found = f"no run {args.run_id!r} for this key"
    if isinstance(found, str):
        sys.stderr.write(f"parallel-mcp show: {found}\n")
        return 1
    text = found.model_dump_json(indent=1) + "\n" if args.json else render_report(found)
    if args.output is not None:
        args.output.write_text(text, encoding="utf-8")
        out.write(f"wrote {args.output} ({len(text)} characters)\n")
    else:
        out.write(text)
    return 0


# -- doctor ------------------------------------------------------------------------------------------


class Report:
    """The doctor's findings, one line each; any failure makes the exit code 1."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.failed = False

    def ok(self, what: str, detail: str) -> None:
        self.out.write(f"ok    {what}: {detail}\n")

    def warn(self, what: str, detail: str) -> None:
        self.out.write(f"warn  {what}: {detail}\n")

    def fail(self, what: str, detail: str) -> None:
        self.failed = True
        self.out.write(f"FAIL  {what}: {detail}\n")


async def _doctor(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    report = Report(out)
    await _check_key(settings, report, live=args.live)
    await _check_store(settings, report)
    _check_http(settings, report)
    await _check_issuer(settings, report)
    _client_config(settings, out)
    return 1 if report.failed else 0


async def _check_key(settings: Settings, report: Report, *, live: bool) -> None:
    if settings.api_key is None:
        report.warn("API key", "PARALLEL_API_KEY is not set: the server runs on its embedded emulator (not research)")
        report.ok("base URL", f"{settings.base_url} (not used without a key)")
        return
    if settings.base_url.startswith("http://"):
        report.warn("base URL", f"{settings.base_url} is plain http: the key would travel unencrypted")
    client = make_client(settings, api_key=settings.api_key.get_secret_value(), base_url=settings.base_url)
    async with client:
        try:
            await client.get_run(PROBE_RUN_ID)
        except NotFoundError:
            report.ok("base URL", f"{settings.base_url} answers")
            report.ok("API key", "accepted (a read of an unknown run answered 404; nothing was billed)")
        except AuthenticationError:
            report.ok("base URL", f"{settings.base_url} answers")
            report.fail("API key", "rejected by the API (401): set a valid PARALLEL_API_KEY")
            return
        except APIConnectionError as exc:
            report.fail("base URL", f"{settings.base_url} cannot be reached: {exc}")
            return
        except APIError as exc:
            report.fail("API key", f"the probe read failed: {exc}")
            return
        else:
            report.warn("API key", f"the probe run {PROBE_RUN_ID} unexpectedly exists")
        if live:
            await _live_run(client, report)


async def _live_run(client: AsyncTaskClient, report: Report) -> None:
    try:
        run = await client.create_run(TaskRunInput(input=LIVE_QUESTION, processor="lite"))
        with anyio.fail_after(LIVE_WAIT_SECONDS):
            result = None
            while result is None:
                result = await client.get_result(run.run_id, timeout=30)
    except (APIError, TimeoutError) as exc:
        report.fail("live run", f"a lite run ($0.005) did not complete: {exc or 'timed out'}")
        return
    report.ok("live run", f"{run.run_id} completed on lite ($0.005)")


async def _check_store(settings: Settings, report: Report) -> None:
    emulated = settings.uses_emulator
    store = open_store(settings, emulated=emulated)
    what = "database" if settings.database_url is not None else "journal"
    try:
        await store.secret()  # opens it (and creates or migrates it), as the server's first call would
    except StoreError as exc:
        report.fail(what, str(exc))
        return
    finally:
        await store.close()
    if store.location == MEMORY:
        reason = "the emulator's runs end with the process" if emulated else "journal = off"
        report.warn(what, f"in memory ({reason}): lost runs cannot be found after a restart")
        return
    if settings.database_url is not None:
        report.ok(what, f"{store.location} (PostgreSQL, shared by replicas)")
        return
    path = Path(store.location)
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        report.warn(what, f"{path} is readable by others (mode {mode:o}); it should be 600")
    else:
        report.ok(what, f"{path} (owner-only)")


def _check_http(settings: Settings, report: Report) -> None:
    from parallel_mcp.exposure import check_serving

    http = settings.model_copy(update={"transport": "streamable-http"})
    try:
        warning = check_serving(http)
    except ConfigError as exc:
        report.fail("HTTP", str(exc))
        return
    auth = (
        f"OAuth ({settings.oauth_issuer})"
        if settings.oauth_issuer
        else "bearer token"
        if settings.auth_token
        else "no authentication"
    )
    where = f"http://{settings.host}:{settings.port}/mcp, {auth}"
    if warning is not None:
        report.warn("HTTP", f"{where}: {warning}")
    else:
        report.ok("HTTP", where)
    if settings.public_url:
        webhooks = "on" if settings.webhook_secret else "off (no PARALLEL_WEBHOOK_SECRET)"
        report.ok("public URL", f"{settings.public_url} (webhooks {webhooks})")


async def _check_issuer(settings: Settings, report: Report) -> None:
    if settings.oauth_issuer is None or (settings.public_url is None and settings.oauth_audience is None):
        return  # the HTTP check said what is missing
    from parallel_mcp.auth import KeyUnavailableError, token_verifier
    from parallel_mcp.introspection import IntrospectionError

    try:
        report.ok("OAuth issuer", f"{settings.oauth_issuer}: {await token_verifier(settings).probe()}")
    except (KeyUnavailableError, IntrospectionError) as exc:
        report.fail("OAuth issuer", str(exc))


def _client_config(settings: Settings, out: TextIO) -> None:
    uvx = shutil.which("uvx")
    project = Path(__file__).resolve().parent.parent
    source = str(project) if (project / "pyproject.toml").exists() else "parallel-mcp"
    out.write("\nClient configuration for this machine")
    if uvx is None:
        out.write(" (uvx is not on PATH: install uv first, `python3 -m pip install uv`)")
        uvx = "/ABSOLUTE/PATH/TO/uvx"
    out.write(":\n\nClaude Code:\n")
    env = ' --env PARALLEL_API_KEY="$PARALLEL_API_KEY"' if settings.api_key else ""
    out.write(f"  claude mcp add --transport stdio{env} parallel-task -- {uvx} --from {source} parallel-mcp\n")
    server: dict[str, object] = {"command": uvx, "args": ["--from", source, "parallel-mcp"]}
    if settings.api_key:
        server["env"] = {"PARALLEL_API_KEY": "your-parallel-api-key"}
    out.write("\nClaude Desktop (claude_desktop_config.json):\n")
    out.write(json.dumps({"mcpServers": {"parallel-task": server}}, indent=2) + "\n")

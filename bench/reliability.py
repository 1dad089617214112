"""Reliability (issue 12's figures): duplicate runs under lost answers and kills, call time under a stalled
upstream, sessions and memory under a session flood.

Duplicates: creates whose 202 the emulator drops after creating the run (`drop_response`), each retried
identically, with and without an idempotency key, and with webhooks (the run's webhook names its intent);
and `parallel-mcp serve` (stdio) SIGKILLed while upstream holds its create, restarted on the same journal
and asked again. The emulator's own tally says how many runs were created for how many intents.

Stalled upstream: every GET (or the create's POST) held for 100 s; `create_task_run` and `get_task_run`
with a short wait must end within the wait plus `parallel_mcp.deadline.CALL_MARGIN_SECONDS`. The servers
build their own Task API client from their settings (default retries and timeouts).

Session flood: bare legacy `initialize` requests from one client address against a real
`serve --transport streamable-http` subprocess, with the default session caps and with them effectively
off; sessions still held are counted by pinging each (200 held, 404 forgotten).
"""

from __future__ import annotations

import logging
import sqlite3
import tempfile
import time
from collections import Counter
from collections.abc import AsyncGenerator, Callable, Generator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from mcp.types import CallToolResult, TextContent

from bench.common import Mode, Outcome
from bench.report import Table, Target
from tests.flood import WORKERS as FLOOD_WORKERS
from tests.flood import held_sessions, open_sessions
from tests.processes import StdioServer, http_server, proc_status_kb, server_env

NAME = "reliability"
KEY = "bench-reliability-key"
RUNS = "/v1/tasks/runs"
RETRIES = 2
"""Identical retries after each lost answer."""
STALL_SECONDS = 100.0
ANSWER_SLACK_SECONDS = 0.5
"""A call's deadline is exactly wait + margin, and a call stalled at every step uses all of it: this much more
is allowed for the answer to reach the client after the deadline."""
KILL_HOLD_SECONDS = 1.0
"""How long upstream holds the create that the server is killed in the middle of."""
CAPS_OFF = "100000"

# What a create's answer says (see parallel_mcp.guidance).
MAY_EXIST = "error: a run may exist (no id)"
REFUSED = "error: may exist, cannot be confirmed; nothing new sent"
PENDING = "error: another call is creating it right now; nothing new sent"
RETURNED = "returned the first run; nothing new billed"
CREATED = "created a run"
OTHER = "other error"


def text_of(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


def answer(result: CallToolResult) -> str:
    """What a create_task_run answer says, in a few words."""
    text = text_of(result)
    if result.is_error:
        if "nothing new was sent" in text:
            return PENDING if "right now" in text else REFUSED
        if "may have created a run" in text:
            return MAY_EXIST
        return f"{OTHER}: {text[:120]}"
    return RETURNED if "nothing new was billed" in text else CREATED


def raw_answer(message: dict[str, Any]) -> str:
    """`answer` for a raw JSON-RPC tools/call answer (the stdio server)."""
    result = message.get("result")
    if not isinstance(result, dict):
        return f"{OTHER}: {str(message.get('error'))[:120]}"
    return answer(CallToolResult.model_validate(result))


def tally(answers: Counter[str]) -> str:
    return "; ".join(f"{count} × {said}" for said, count in answers.most_common()) or "–"


# ----- duplicates ------------------------------------------------------------------------------------------


@dataclass
class Duplicates:
    scenario: str
    intents: int = 0
    first: Counter[str] = field(default_factory=Counter[str])
    retries: Counter[str] = field(default_factory=Counter[str])
    posts: int = 0
    runs: int = 0
    asked_for: int = 0
    """Runs the agent asked for on purpose (force_new), beyond one per intent."""
    retry_seconds: list[float] = field(default_factory=list[float])

    @property
    def duplicates(self) -> int:
        return self.runs - self.intents - self.asked_for


@asynccontextmanager
async def deployed(config: Any, journal: Path) -> AsyncGenerator[tuple[Client, Any]]:
    """An in-memory MCP client of a server built as deployed (its own Task API client, from its settings)
    whose upstream is an emulator in this process; its journal is a SQLite file."""
    from pydantic import SecretStr

    from parallel_mcp.config import Settings
    from parallel_mcp.emulator.runner import serve_emulator
    from parallel_mcp.server import create_server

    async with serve_emulator(config.model_copy(update={"api_key": KEY})) as emulator:
        settings = Settings(api_key=SecretStr(KEY), base_url=emulator.base_url, journal=str(journal))
        async with Client(create_server(settings), cache=None) as client:
            yield client, emulator


def _posts(emulator_state: Any, since: int) -> int:
    return sum(1 for r in emulator_state.request_log[since:] if r.method == "POST" and r.path == RUNS)


async def lost_answers(directory: Path, count: int, *, keyed: bool, force_new: bool = False) -> Duplicates:
    """`count` creates whose 202 is lost, each retried identically `RETRIES` times (or once with force_new)."""
    from parallel_mcp.emulator.config import EmulatorConfig
    from parallel_mcp.emulator.faults import Fault

    if force_new:
        scenario = "lost 202, then retried with force_new=true (the agent asks for another run)"
    else:
        scenario = f"lost 202, retried identically ×{RETRIES}, {'same idempotency_key' if keyed else 'no key'}"
    found = Duplicates(scenario)
    journal = directory / f"lost-{keyed}-{force_new}.sqlite3"
    async with deployed(EmulatorConfig(frozen=True), journal) as (client, emulator):
        state = emulator.state
        start, runs_before = len(state.request_log), state.run_count
        for index in range(count):
            state.faults.add(Fault(kind="drop_response", method="POST", path=RUNS, times=1))
            arguments: dict[str, Any] = {"input": f"Lost answer {index}: who founded Acme?", "wait_seconds": 0}
            if keyed:
                arguments["idempotency_key"] = f"bench-lost-{index}"
            found.intents += 1
            found.first[answer(await client.call_tool("create_task_run", arguments))] += 1
            if force_new:
                started = time.perf_counter()
                found.retries[answer(await client.call_tool("create_task_run", {**arguments, "force_new": True}))] += 1
                found.retry_seconds.append(time.perf_counter() - started)
                found.asked_for += 1
                continue
            for _ in range(RETRIES):
                started = time.perf_counter()
                found.retries[answer(await client.call_tool("create_task_run", arguments))] += 1
                found.retry_seconds.append(time.perf_counter() - started)
        await anyio.sleep(0.1)
        found.posts, found.runs = _posts(state, start), state.run_count - runs_before
    return found


async def lost_answers_with_webhooks(directory: Path, count: int) -> Duplicates:
    """Lost 202s on a server with webhooks: the run's webhook names its intent; then the identical retry."""
    from bench.delivery import http_rig
    from parallel_mcp.emulator.faults import Fault

    found = Duplicates(f"lost 202, webhooks on, run ended, retried identically ×{RETRIES}, same idempotency_key")
    async with http_rig(directory / "lost-webhooks.sqlite3", pushed=True) as rig:
        state = rig.state
        start, runs_before = len(state.request_log), state.run_count
        for index in range(count):
            state.faults.add(Fault(kind="drop_response", method="POST", path=RUNS, times=1))
            known = set(state.runs)
            arguments = {"input": f"Lost answer {index}, pushed", "idempotency_key": f"bench-hook-{index}"}
            found.intents += 1
            found.first[answer(await rig.client.call_tool("create_task_run", {**arguments, "wait_seconds": 0}))] += 1
            delivered = len(state.webhook_results)
            made = set(state.runs) - known
            for run_id in made:
                state.finish(run_id)  # its webhook carries the intent's tag
            with anyio.fail_after(10):
                await until(lambda made=made, delivered=delivered: len(state.webhook_results) >= delivered + len(made))
            for _ in range(RETRIES):
                started = time.perf_counter()
                retried = await rig.client.call_tool("create_task_run", {**arguments, "wait_seconds": 0})
                found.retries[answer(retried)] += 1
                found.retry_seconds.append(time.perf_counter() - started)
        await anyio.sleep(0.1)
        found.posts, found.runs = _posts(state, start), state.run_count - runs_before
    return found


def intents_sending(journal: Path) -> int:
    """Intents the journal says are being sent (the create is in flight)."""
    if not journal.exists():
        return 0
    try:
        with sqlite3.connect(journal) as db:
            return int(db.execute("SELECT COUNT(*) FROM intents WHERE state = 'sending'").fetchone()[0])
    except sqlite3.OperationalError:
        return 0  # not migrated yet, or busy


async def until(predicate: Callable[[], bool]) -> None:
    """Wait, bounded by the caller's fail_after, for something another process does."""
    while not predicate():
        await anyio.sleep(0.02)


async def killed_creates(directory: Path, count: int, *, keyed: bool) -> Duplicates:
    """`count` times: a stdio server SIGKILLed while upstream holds its create, restarted on its journal, retried."""
    from parallel_mcp.emulator.config import EmulatorConfig
    from parallel_mcp.emulator.faults import Fault
    from parallel_mcp.emulator.runner import serve_emulator

    found = Duplicates(
        f"kill -9 while the create is in flight, restarted, retried, {'same key' if keyed else 'no key'}"
    )
    async with serve_emulator(EmulatorConfig(api_key=KEY, frozen=True)) as emulator:
        state = emulator.state
        start, runs_before = len(state.request_log), state.run_count
        for index in range(count):
            journal = directory / f"killed-{keyed}-{index}.sqlite3"
            env = server_env(
                PARALLEL_API_KEY=KEY, PARALLEL_BASE_URL=emulator.base_url, PARALLEL_MCP_JOURNAL=str(journal)
            )
            create: dict[str, Any] = {"input": f"Killed mid-create {index}", "processor": "lite", "wait_seconds": 0}
            if keyed:
                create["idempotency_key"] = f"bench-kill-{index}"
            call = {"name": "create_task_run", "arguments": create}
            held = state.faults.add(Fault(kind="latency", method="POST", path=RUNS, delay=KILL_HOLD_SECONDS, times=1))
            before = state.run_count
            found.intents += 1
            with anyio.fail_after(60):
                async with StdioServer.running(env) as first_life:
                    await first_life.send_request("tools/call", call)
                    await until(lambda held=held, journal=journal: held.fired == 1 and intents_sending(journal) == 1)
                    first_life.process.kill()  # SIGKILL while upstream holds the create
                found.first["killed in flight (no answer)"] += 1
                await until(lambda before=before: state.run_count == before + 1)  # the service keeps the run
                async with StdioServer.running(env) as second_life:
                    started = time.perf_counter()
                    found.retries[raw_answer(await second_life.request("tools/call", call))] += 1
                    found.retry_seconds.append(time.perf_counter() - started)
        await anyio.sleep(0.1)
        found.posts, found.runs = _posts(state, start), state.run_count - runs_before
    return found


def duplicates_table(rows: list[Duplicates]) -> Table:
    table = Table(
        "Reliability: duplicate runs under lost create answers and kills (emulator's own tally)",
        [
            "scenario",
            "intents",
            "first answer",
            "retries answered",
            "retry s (max)",
            "creates sent upstream",
            "runs created",
            "duplicates",
        ],
    )
    for row in rows:
        table.add(
            row.scenario,
            row.intents,
            tally(row.first),
            tally(row.retries),
            max(row.retry_seconds, default=None),
            row.posts,
            row.runs,
            f"{row.duplicates} (+{row.asked_for} asked for)" if row.asked_for else row.duplicates,
        )
    table.notes += [
        "Lost 202: the emulator creates the run, then closes the connection instead of answering "
        "(Fault kind drop_response), as a proxy that loses the answer does. Servers built from their settings "
        "(their own Task API client: default retries and timeouts), journal in a SQLite file.",
        "Webhooks: a server over loopback HTTP with a public URL and a webhook secret; the run is finished after "
        "the lost answer and its webhook (which names the create's intent) reaches the server before the retries.",
        f"Kill: `parallel-mcp serve` over stdio, upstream holding its create for {KILL_HOLD_SECONDS:g} s; SIGKILL once "
        "the journal shows the intent as being sent; the emulator keeps the run; a new process on the same journal "
        "gets the identical call.",
        "Duplicates = runs created − intents (− runs asked for with force_new).",
    ]
    return table


# ----- a stalled upstream ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stalled:
    stall: str
    tool: str
    wait: float
    seconds: float
    said: str


async def stalled_calls(waits: list[float], repeats: int) -> list[Stalled]:
    """Calls against upstreams whose GETs (or create POSTs) are held for STALL_SECONDS, all at once."""
    from parallel_mcp.emulator.config import EmulatorConfig
    from parallel_mcp.emulator.faults import Fault

    found: list[Stalled] = []
    with tempfile.TemporaryDirectory(prefix="bench-stall-") as directory:
        async with (
            deployed(EmulatorConfig(frozen=True), Path(directory) / "gets.sqlite3") as (reads, read_upstream),
            deployed(EmulatorConfig(frozen=True), Path(directory) / "posts.sqlite3") as (creates, create_upstream),
        ):
            existing = await reads.call_tool("create_task_run", {"input": "Made before the stall", "wait_seconds": 0})
            if existing.is_error or not existing.structured_content:
                raise RuntimeError(f"the run to read could not be created: {text_of(existing)}")
            run_id = str(existing.structured_content["run_id"])
            read_upstream.state.faults.add(Fault(kind="latency", method="GET", path="*", delay=STALL_SECONDS))
            create_upstream.state.faults.add(Fault(kind="latency", method="POST", path=RUNS, delay=STALL_SECONDS))

            async def timed(stall: str, client: Client, tool: str, arguments: dict[str, Any]) -> None:
                started = time.perf_counter()
                result = await client.call_tool(tool, arguments)
                seconds = time.perf_counter() - started
                text = text_of(result)
                if not result.is_error:
                    said = "the run's id; its status unread" if "reading its status failed" in text else "a result"
                elif "within the call's time" in text:
                    said = "error: no answer within the call's time"
                elif "may have created a run" in text:
                    said = "error: a run may exist"
                else:
                    said = f"error: {text[:80]}"
                found.append(Stalled(stall, tool, float(arguments["wait_seconds"]), seconds, said))

            with anyio.fail_after(max(waits) + 60):
                async with anyio.create_task_group() as group:
                    for wait in waits:
                        for index in range(repeats):
                            question = f"Stalled {wait} {index}"
                            group.start_soon(
                                timed,
                                "GETs",
                                reads,
                                "create_task_run",
                                {"input": question, "wait_seconds": wait},
                            )
                            group.start_soon(
                                timed, "GETs", reads, "get_task_run", {"run_id": run_id, "wait_seconds": wait}
                            )
                            group.start_soon(
                                timed,
                                "create POST",
                                creates,
                                "create_task_run",
                                {"input": question, "wait_seconds": wait},
                            )
    return found


def stalled_table(found: list[Stalled], margin: float) -> Table:
    table = Table(
        f"Reliability: tool-call duration with upstream stalled ({STALL_SECONDS:g} s on every GET, or on the "
        "create's POST)",
        [
            "upstream stalled",
            "tool",
            "wait_seconds",
            "calls",
            "max s",
            "deadline s (wait + margin)",
            "past the deadline ms",
            "answer",
            f"met (≤ deadline + {ANSWER_SLACK_SECONDS:g} s)",
        ],
    )
    groups: dict[tuple[str, str, float], list[Stalled]] = {}
    for item in found:
        groups.setdefault((item.stall, item.tool, item.wait), []).append(item)
    for (stall, tool, wait), items in sorted(groups.items(), key=lambda entry: (entry[0][2], entry[0][0])):
        longest = max(item.seconds for item in items)
        table.add(
            stall,
            tool,
            wait,
            len(items),
            longest,
            wait + margin,
            max(0.0, longest - wait - margin) * 1000,
            tally(Counter(item.said for item in items)),
            longest <= wait + margin + ANSWER_SLACK_SECONDS,
        )
    table.notes.append(
        f"Margin: parallel_mcp.deadline.CALL_MARGIN_SECONDS = {margin:g} s; a call's deadline is its wait plus the "
        "margin, and a call stalled at every step uses all of it, so it ends just after the deadline. Before "
        "issue 12 such calls took 187.6 s (three attempts of the 60 s request timeout). The calls run at once, "
        "beside the duplicates scenarios."
    )
    return table


class _StalledShutdown(logging.Filter):
    """Drops uvicorn's report of the stalled requests it cancels when a stalled emulator stops."""

    def filter(self, record: logging.LogRecord) -> bool:
        cause = record.exc_info[1] if record.exc_info else None
        return "graceful shutdown exceeded" not in f"{record.getMessage()} {cause}"


@contextmanager
def quiet_stalled_shutdown() -> Generator[None]:
    logger = logging.getLogger("uvicorn.error")
    quiet = _StalledShutdown()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


# ----- a session flood -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Flood:
    label: str
    requests: int
    statuses: Counter[int]
    seconds: float
    held: int
    rss_before_kb: int
    rss_after_kb: int
    peak_kb: int
    newcomer: bool


async def flood(label: str, count: int, **settings: str) -> Flood:
    """A fresh server; `count` bare initializes from one address; what it still holds, and its memory."""
    with anyio.fail_after(240):
        async with http_server("serve", "--transport", "streamable-http", env=server_env(**settings)) as server:
            pid = server.process.pid
            await open_sessions(server.url, 20)  # warm-up: the first sessions load what every session needs
            before = proc_status_kb(pid, "VmRSS")
            started = time.perf_counter()
            opened = await open_sessions(server.url, count)
            seconds = time.perf_counter() - started
            after, peak = proc_status_kb(pid, "VmRSS"), proc_status_kb(pid, "VmHWM")
            alive = len(await held_sessions(server.url, opened.ids))
            newcomer = await open_sessions(server.url, 1, address="127.0.0.2")
    return Flood(label, count, opened.statuses, seconds, alive, before, after, peak, len(newcomer.ids) == 1)


def flood_table(rows: list[Flood]) -> Table:
    table = Table(
        "Reliability: a session flood from one client (bare legacy initialize requests, real server subprocess)",
        [
            "session caps",
            "initializes",
            "answers",
            "flood s",
            "sessions held",
            "RSS before (MiB)",
            "RSS after (MiB)",
            "RSS growth (MiB)",
            "peak RSS (MiB)",
            "a new client gets a session",
        ],
    )
    for row in rows:
        table.add(
            row.label,
            row.requests,
            ", ".join(f"{count:,} × {status}" for status, count in sorted(row.statuses.items())),
            row.seconds,
            row.held,
            row.rss_before_kb / 1024,
            row.rss_after_kb / 1024,
            (row.rss_after_kb - row.rss_before_kb) / 1024,
            row.peak_kb / 1024,
            row.newcomer,
        )
    table.notes += [
        f"`serve --transport streamable-http` (embedded emulator, no database: legacy sessions are stateful); "
        f"{FLOOD_WORKERS} parallel streams of initialize requests from 127.0.0.1 with nothing after them; RSS "
        "(VmRSS) after 20 warm-up sessions and after the flood. Sessions held: the flood's session ids that still "
        "answer a ping (a forgotten one gets 404).",
        f"Caps off: PARALLEL_MCP_MAX_SESSIONS and PARALLEL_MCP_MAX_SESSIONS_PER_CLIENT at {int(CAPS_OFF):,}. "
        "Before issue 12, 10,000 such requests took a server from 81 to 460 MiB, then every new client got 503.",
        "A new client: one initialize from 127.0.0.2 after the flood.",
    ]
    return table


# ----- the benchmark ---------------------------------------------------------------------------------------


async def run(mode: Mode) -> Outcome:
    from parallel_mcp.config import Settings
    from parallel_mcp.deadline import CALL_MARGIN_SECONDS

    lost = mode.pick(3, 20)
    kills = mode.pick(1, 3)
    waits = [1.0] if mode.quick else [1.0, 5.0]
    floods = mode.pick(300, 2000)
    defaults = Settings()
    rows: dict[int, Duplicates] = {}
    stalls: list[Stalled] = []

    async def lost_side(directory: Path) -> None:
        rows[0] = await lost_answers(directory, lost, keyed=True)
        rows[1] = await lost_answers(directory, lost, keyed=False)
        rows[2] = await lost_answers_with_webhooks(directory, lost)
        rows[5] = await lost_answers(directory, mode.pick(1, 3), keyed=True, force_new=True)

    async def kill_side(directory: Path) -> None:
        rows[3] = await killed_creates(directory, kills, keyed=False)
        if not mode.quick:
            rows[4] = await killed_creates(directory, kills, keyed=True)

    async def stall_side() -> None:
        with quiet_stalled_shutdown():
            stalls.extend(await stalled_calls(waits, mode.pick(1, 3)))

    capped = f"default (≤ {defaults.max_sessions_per_client} per client, ≤ {defaults.max_sessions:,} in all)"
    caps_off = {"PARALLEL_MCP_MAX_SESSIONS": CAPS_OFF, "PARALLEL_MCP_MAX_SESSIONS_PER_CLIENT": CAPS_OFF}
    default_caps: dict[str, str] = {}
    floods_done: dict[str, Flood] = {}

    async def flood_side(label: str, settings: dict[str, str]) -> None:
        floods_done[label] = await flood(label, floods, **settings)

    # The duplicates and the stalled calls run at once (mostly waiting: on subprocesses, on deadlines), then
    # the two floods at once on two servers; the floods keep this process busy, which would delay the
    # stalled calls' answers.
    with tempfile.TemporaryDirectory(prefix="bench-reliability-") as name:
        async with anyio.create_task_group() as group:
            group.start_soon(stall_side)
            group.start_soon(kill_side, Path(name))
            group.start_soon(lost_side, Path(name))
        async with anyio.create_task_group() as group:
            group.start_soon(flood_side, capped, default_caps)
            group.start_soon(flood_side, "caps effectively off", caps_off)
    duplicates = [rows[index] for index in sorted(rows)]

    sessions = [floods_done[capped], floods_done["caps effectively off"]]
    counted = [row for row in duplicates if not row.asked_for]
    total = sum(row.duplicates for row in counted)
    longest = {wait: max(s.seconds for s in stalls if s.wait == wait) for wait in waits}
    capped = sessions[0]
    targets = [
        Target(
            "reliability: duplicate runs",
            "0 duplicate runs under lost create answers and kills",
            f"{total} over {sum(row.intents for row in counted)} intents "
            f"({sum(row.runs for row in counted)} runs created)",
            total == 0,
        ),
        Target(
            "reliability: stalled upstream",
            f"every call ends within wait + {CALL_MARGIN_SECONDS:g} s (its deadline), "
            f"+ {ANSWER_SLACK_SECONDS:g} s to answer",
            ", ".join(
                f"wait {wait:g} s: max {seconds:.2f} s ({max(0.0, seconds - wait - CALL_MARGIN_SECONDS) * 1000:.0f} ms "
                "past the deadline)"
                for wait, seconds in longest.items()
            ),
            all(seconds <= wait + CALL_MARGIN_SECONDS + ANSWER_SLACK_SECONDS for wait, seconds in longest.items()),
        ),
        Target(
            "reliability: session flood",
            f"one client holds ≤ {defaults.max_sessions_per_client} sessions; a new client still gets one",
            f"{capped.held} of {capped.requests:,} held, RSS +{(capped.rss_after_kb - capped.rss_before_kb) / 1024:.1f}"
            f" MiB (caps off: {sessions[1].held:,} held, "
            f"+{(sessions[1].rss_after_kb - sessions[1].rss_before_kb) / 1024:.1f} MiB)",
            capped.held <= defaults.max_sessions_per_client and capped.newcomer,
        ),
    ]
    return Outcome(
        tables=[duplicates_table(duplicates), stalled_table(stalls, CALL_MARGIN_SECONDS), flood_table(sessions)],
        targets=targets,
    )

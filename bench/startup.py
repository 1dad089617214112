"""Start-up: spawn to a `tools/list` answer over stdio, parallel-mcp vs a hello-world `MCPServer`.

Each sample spawns a fresh interpreter, does the handshake a client does (initialize, initialized,
tools/list) with raw JSON-RPC lines, and stops the clock at the `tools/list` answer. The variants
are interleaved (their order rotates every round) after one unmeasured warm-up each.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

from mcp_types.version import LATEST_HANDSHAKE_VERSION

from bench.common import (
    BENCH_DIR,
    BENCH_KEY,
    DEAD_UPSTREAM,
    HELLO_SERVER,
    Mode,
    Outcome,
    log_file,
    median,
    python,
    tail,
)
from bench.report import Table, Target
from tests.processes import server_env

NAME = "startup"
TARGET_RATIO = 1.15
TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class Variant:
    label: str
    command: list[str]
    env: dict[str, str]
    baseline: str
    """The label of the hello-world variant this one is compared with."""


HELLO = "hello-world MCPServer (baseline)"
HELLO_NO_PYC = "hello-world MCPServer, no bytecode (baseline)"


def no_bytecode(env: dict[str, str]) -> dict[str, str]:
    """An environment where Python finds no .pyc and writes none, as in Docker images with
    PYTHONDONTWRITEBYTECODE=1 and an install that did not compile: every start compiles from source."""
    empty = tempfile.mkdtemp(prefix="no-pyc-")
    return {**env, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": empty}


def with_bytecode(env: dict[str, str]) -> dict[str, str]:
    """An environment where Python writes and reuses .pyc files, whatever the shell running the benchmark
    says: with PYTHONDONTWRITEBYTECODE inherited, every module edited since its .pyc was written would
    compile again at every start, and the figures would measure the edits, not the server."""
    return {k: v for k, v in env.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}


def variants() -> list[Variant]:
    serve = [python(), "-m", "parallel_mcp", "serve"]
    hello = [python(), str(HELLO_SERVER)]
    keyed = server_env(PARALLEL_API_KEY=BENCH_KEY, PARALLEL_BASE_URL=DEAD_UPSTREAM)
    return [
        Variant(HELLO, hello, with_bytecode(server_env()), HELLO),
        Variant("parallel-mcp serve, API key set", serve, with_bytecode(keyed), HELLO),
        Variant("parallel-mcp serve, no key (embedded emulator)", serve, with_bytecode(server_env()), HELLO),
        Variant(HELLO_NO_PYC, hello, no_bytecode(server_env()), HELLO_NO_PYC),
        Variant("parallel-mcp serve, API key set, no bytecode", serve, no_bytecode(keyed), HELLO_NO_PYC),
    ]


def _send(stdin: IO[bytes], message: dict[str, Any]) -> None:
    stdin.write(json.dumps(message).encode() + b"\n")
    stdin.flush()


def _answer(stdout: IO[bytes], request_id: int) -> dict[str, Any]:
    while True:
        line = stdout.readline()
        if not line:
            raise RuntimeError(f"the server closed stdout before answering request {request_id}")
        message = cast(dict[str, Any], json.loads(line))
        if message.get("id") == request_id:
            if "error" in message:
                raise RuntimeError(f"request {request_id} failed: {message['error']}")
            return cast(dict[str, Any], message["result"])


def spawn_to_tools_list(variant: Variant, log: Path) -> tuple[float, int]:
    """Seconds from spawn to the `tools/list` answer, and how many tools it listed."""
    with log.open("ab") as errlog:
        started = time.perf_counter()
        process = subprocess.Popen(
            variant.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errlog, env=variant.env
        )
        watchdog = threading.Timer(TIMEOUT_SECONDS, process.kill)
        watchdog.start()
        try:
            assert process.stdin is not None and process.stdout is not None
            _send(
                process.stdin,
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "initialize",
                    "params": {
                        "protocolVersion": LATEST_HANDSHAKE_VERSION,
                        "capabilities": {},
                        "clientInfo": {"name": "bench", "version": "0"},
                    },
                },
            )
            _answer(process.stdout, 1)
            _send(process.stdin, {"jsonrpc": "2.0", "method": "notifications/initialized"})
            _send(process.stdin, {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}})
            tools = cast(list[Any], _answer(process.stdout, 2)["tools"])
            elapsed = time.perf_counter() - started
        except Exception as exc:
            raise RuntimeError(f"{variant.label}: {exc}\n{tail(log)}") from exc
        finally:
            watchdog.cancel()
            if process.stdin is not None:
                process.stdin.close()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()
    return elapsed, len(tools)


_IMPORT_LINE = re.compile(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)")


def import_times(command: list[str], env: dict[str, str]) -> dict[str, int]:
    """Self import time (µs) of every module the command imports before it reads stdin (EOF at once)."""
    done = subprocess.run(
        [command[0], "-X", "importtime", *command[1:]],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )
    found: dict[str, int] = {}
    for line in done.stderr.decode("utf-8", "replace").splitlines():
        match = _IMPORT_LINE.match(line)
        if match:
            found[match.group(4)] = int(match.group(1))
    return found


def import_table(chosen: list[Variant]) -> Table:
    """Where the extra start-up goes: modules imported beyond the hello-world's, by top-level package."""
    baseline = import_times(chosen[0].command, chosen[0].env)
    table = Table(
        "Start-up: import time beyond the hello-world's (python -X importtime, self time by package)",
        ["variant", "modules", "ms", "top packages (ms)"],
    )
    table.add("hello-world MCPServer (all its imports)", len(baseline), sum(baseline.values()) / 1000, "–")
    for variant in chosen[1:]:
        found = import_times(variant.command, variant.env)
        extra = {name: us for name, us in found.items() if name not in baseline}
        by_package: dict[str, int] = defaultdict(int)
        for name, us in extra.items():
            by_package[name.split(".")[0]] += us
        top = sorted(by_package.items(), key=lambda item: -item[1])[:8]
        table.add(
            variant.label,
            len(extra),
            sum(extra.values()) / 1000,
            ", ".join(f"{package} {us / 1000:.0f}" for package, us in top),
        )
    table.notes.append("-X importtime inflates import times; the figures show where time goes, not its size.")
    return table


def phase_table(chosen: list[Variant], repeats: int) -> Table:
    """parallel-mcp's start-up work beyond the hello-world's, phase by phase (bench/startup_phases.py)."""
    script = str(BENCH_DIR / "startup_phases.py")
    columns: list[str] = []
    rows: list[list[str]] = []
    for variant in chosen[1:]:
        runs: list[dict[str, float]] = []
        for _ in range(repeats):
            done = subprocess.run(
                [python(), script], capture_output=True, env=variant.env, timeout=TIMEOUT_SECONDS, check=True
            )
            runs.append(cast(dict[str, float], json.loads(done.stdout)))
        columns = list(runs[0])
        medians = [median([found[name] for found in runs]) * 1000 for name in columns]
        extra = sum(medians[1:])
        rows.append(
            [variant.label, *(f"{value:.0f}" for value in medians), f"{extra:.0f}", f"{extra / medians[0]:.2f}"]
        )
    table = Table(
        f"Start-up phases in a fresh interpreter (ms, median of {repeats})",
        ["variant", *columns, "parallel-mcp's extra", "extra / SDK import"],
    )
    table.rows.extend(rows)
    table.notes.append(
        "The hello-world pays the SDK import too; everything after it is parallel-mcp's own start-up work. "
        "MCPServer enters the lifespan (which opens the Task API client's httpx2 pool, or starts the embedded "
        "emulator) before it answers the first request."
    )
    return table


def run(mode: Mode) -> Outcome:
    rounds = mode.pick(3, 25)
    chosen = variants()
    log = log_file(NAME)
    samples: dict[str, list[float]] = {variant.label: [] for variant in chosen}
    tool_counts: dict[str, int] = {}
    for variant in chosen:  # warm-up: writes the .pyc files of the bytecode variants, fills the page cache
        spawn_to_tools_list(variant, log)
    for round_index in range(rounds):
        shift = round_index % len(chosen)
        for variant in chosen[shift:] + chosen[:shift]:
            seconds, count = spawn_to_tools_list(variant, log)
            samples[variant.label].append(seconds)
            tool_counts[variant.label] = count

    table = Table(
        f"Start-up: spawn to tools/list answered over stdio ({rounds} runs each, interleaved)",
        ["variant", "tools", "median ms", "min ms", "max ms", "ratio vs hello (paired)", "target", "met"],
    )
    targets: list[Target] = []
    for variant in chosen:
        values = samples[variant.label]
        # Each round spawns every variant back to back: a ratio within a round cancels the machine's slower
        # and faster spells (other tenants), which move a whole round; their median is the figure.
        ratio = median([mine / base for mine, base in zip(values, samples[variant.baseline], strict=True)])
        is_baseline = variant.baseline == variant.label
        met = None if is_baseline else ratio <= TARGET_RATIO
        table.add(
            variant.label,
            tool_counts[variant.label],
            median(values) * 1000,
            min(values) * 1000,
            max(values) * 1000,
            ratio,
            "baseline" if is_baseline else f"≤ {TARGET_RATIO}x",
            met,
        )
        if not is_baseline:
            targets.append(
                Target(
                    f"start-up ({variant.label})",
                    f"≤ {TARGET_RATIO}x hello-world",
                    f"{ratio:.2f}x",
                    ratio <= TARGET_RATIO,
                )
            )
    table.notes.append(
        "Each sample: spawn `python …` (same interpreter), initialize, initialized, tools/list over raw JSON-RPC lines."
    )
    table.notes.append(
        "Ratio: the median over rounds of (this variant's time / its hello-world's time in the same round); every "
        "round runs each variant once, in a rotating order."
    )
    table.notes.append(
        "'no bytecode': PYTHONDONTWRITEBYTECODE=1 and an empty PYTHONPYCACHEPREFIX, so every module compiles from "
        "source at every start (a Docker image or uvx install without compiled bytecode). `uv sync` compiles "
        "bytecode for this project (tool.uv compile-bytecode); uvx users pass --compile-bytecode."
    )
    compiled = [v for v in chosen if v.baseline == HELLO]
    phases = phase_table(compiled, mode.pick(1, 5))
    return Outcome(tables=[table, phases, import_table(compiled)], targets=targets)

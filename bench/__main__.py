"""`python -m bench [--quick] [--only NAME]`: run the benchmarks, print their tables, write the results.

A full run of every benchmark writes `bench/RESULTS.md`; `--quick` (the CI smoke) writes
`bench/out/RESULTS-quick.md` and `--only` writes `bench/out/RESULTS-<name>.md`, so neither touches
the committed file. The exit status is 1 only when a benchmark malfunctioned (an exception, a lost
or failed run); a missed target is reported, not failed.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import anyio

from bench import (
    concurrency,
    delivery,
    overhead,
    reliability,
    replicas,
    result_size,
    startup,
    store,
    tool_definitions,
)
from bench.common import BENCH_DIR, OUT_DIR, Mode, Outcome
from bench.report import Load, Table, Target, targets_table, write_results

BENCHMARKS: dict[str, Callable[[Mode], Outcome]] = {
    result_size.NAME: result_size.run,
    startup.NAME: startup.run,
    overhead.NAME: lambda mode: anyio.run(overhead.run, mode),
    delivery.NAME: lambda mode: anyio.run(delivery.run, mode),
    concurrency.NAME: lambda mode: anyio.run(concurrency.run, mode),
    replicas.NAME: lambda mode: anyio.run(replicas.run, mode),
    store.NAME: lambda mode: anyio.run(store.run, mode),
    reliability.NAME: lambda mode: anyio.run(reliability.run, mode),
    tool_definitions.NAME: lambda mode: anyio.run(tool_definitions.run, mode),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="the CI smoke variant: fewer samples, smaller loads")
    parser.add_argument("--only", choices=list(BENCHMARKS), help="run one benchmark")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    mode = Mode(quick=args.quick)
    chosen = [args.only] if args.only else list(BENCHMARKS)
    tables: list[Table] = []
    targets: list[Target] = []
    failures: list[str] = []
    started = time.perf_counter()
    load = Load.now()
    for name in chosen:
        print(f"== {name}{' (quick)' if mode.quick else ''}", flush=True)
        began = time.perf_counter()
        try:
            outcome = BENCHMARKS[name](mode)
        except concurrency.LoadFailure as failure:
            outcome = failure.outcome
            failures.append(f"{name}: {failure}")
        except Exception as exc:
            traceback.print_exc()
            failures.append(f"{name}: {type(exc).__name__}: {exc}")
            continue
        finally:
            print(f"   ({time.perf_counter() - began:.1f} s)", flush=True)
        for table in outcome.tables:
            print(table.text(), end="\n\n", flush=True)
        tables.extend(outcome.tables)
        targets.extend(outcome.targets)
    summary = targets_table(targets)
    print(summary.text())
    seconds = time.perf_counter() - started
    command = "uv run python -m bench" + (" " + " ".join(sys.argv[1:] if argv is None else argv)).rstrip()
    if mode.quick:
        path = OUT_DIR / "RESULTS-quick.md"
    elif args.only:
        path = OUT_DIR / f"RESULTS-{args.only}.md"
    else:
        path = BENCH_DIR / "RESULTS.md"
    machine_load = load.since()
    print("\n".join(machine_load))
    write_results(
        path,
        command=command.rstrip(),
        seconds=seconds,
        tables=[summary, *tables],
        failures=failures,
        load=machine_load,
    )
    print(f"\nwrote {_shown(path)} in {seconds:.0f} s")
    for failure in failures:
        print(f"FAILED {failure}", file=sys.stderr)
    return 1 if failures else 0


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main())

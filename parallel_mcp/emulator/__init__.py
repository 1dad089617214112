"""A local emulator of Parallel's Task API, faithful enough for the official SDK's strict validation.

Start one in-process with `serve_emulator(EmulatorConfig(...))`; script misbehaviour with `Fault`s;
move its time by hand with `serve_emulator(..., clock=ManualClock())`.
"""

from parallel_mcp.emulator.app import create_emulator_app
from parallel_mcp.emulator.clock import EmulatorClock, ManualClock, RealClock
from parallel_mcp.emulator.config import EmulatorConfig
from parallel_mcp.emulator.faults import Fault, FaultSet
from parallel_mcp.emulator.runner import RunningEmulator, run_emulator_forever, serve_emulator
from parallel_mcp.emulator.state import EmulatorState, GroupRecord, RequestRecord, RunRecord

__all__ = [
    "EmulatorClock",
    "EmulatorConfig",
    "EmulatorState",
    "Fault",
    "FaultSet",
    "GroupRecord",
    "ManualClock",
    "RealClock",
    "RequestRecord",
    "RunRecord",
    "RunningEmulator",
    "create_emulator_app",
    "run_emulator_forever",
    "serve_emulator",
]

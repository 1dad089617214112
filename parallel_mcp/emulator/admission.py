"""What the emulator decides about a run body before the run exists: refusals, duration and warnings."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import cast

from parallel_mcp.emulator.config import EmulatorConfig
from parallel_mcp.models import JsonSchema, TaskRunInput, Warning
from parallel_mcp.models.betas import BETA_FIELD_BASIS, required_betas
from parallel_mcp.processors import get_processor
from parallel_mcp.schema_rules import check_output_schema

PROCESSOR_NAMES = "lite, base, core, core2x, pro, ultra, ultra2x, ultra4x, ultra8x or a -fast variant"

# Without its beta, an array schema is still a valid GA request: the beta only adds per-element basis
# entries, so its absence changes the output, not the answer to the create.
OUTPUT_SHAPING_BETAS = frozenset({BETA_FIELD_BASIS})


class Rejected(Exception):
    """A create that the API refuses: carries the status code and a message naming the problem."""

    def __init__(self, status: int, message: str, *, loc: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.loc = loc


def parse_betas(header_values: Iterable[str]) -> frozenset[str]:
    """The values of `parallel-beta` header(s): comma-separated lists, blanks ignored."""
    return frozenset(value.strip() for header in header_values for value in header.split(",") if value.strip())


def check_processor(run_input: TaskRunInput, loc: tuple[str | int, ...] = ()) -> float:
    """The run's price, or 403 for a processor that does not exist."""
    processor = get_processor(run_input.processor)
    if processor is None:
        raise Rejected(
            403,
            f"Forbidden: invalid processor in request: {run_input.processor[:60]!r} is not a processor "
            f"(use {PROCESSOR_NAMES})",
            loc=(*loc, "processor"),
        )
    return processor.usd_per_run


def check_betas(run_input: TaskRunInput, betas: frozenset[str], loc: tuple[str | int, ...] = ()) -> None:
    """422 naming the field and the missing value when a beta-only field comes without its `parallel-beta`."""
    for beta, field in required_betas(run_input).items():
        if beta in betas or beta in OUTPUT_SHAPING_BETAS:
            continue
        sent = ", ".join(sorted(betas)) or "none"
        raise Rejected(
            422,
            f"{field}: needs the header `parallel-beta: {beta}` "
            f"(a beta feature; this request's parallel-beta values: {sent})",
            loc=(*loc, field),
        )


def run_duration(run_input: TaskRunInput, config: EmulatorConfig) -> float:
    """Seconds this run takes: a deterministic point of the processor's band, over `speed`."""
    processor = get_processor(run_input.processor)
    if config.instant or processor is None:
        return 0.0
    digest = hashlib.sha256(run_input.model_dump_json().encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64
    seconds = processor.min_seconds + fraction * (processor.max_seconds - processor.min_seconds)
    return seconds / config.speed


def creation_warnings(run_input: TaskRunInput) -> list[Warning]:
    """Soft problems of the body that the API reports on the run instead of refusing it."""
    warnings: list[Warning] = []
    spec = run_input.task_spec
    if spec is None:
        return warnings
    if isinstance(spec.output_schema, JsonSchema):
        for message in check_output_schema(spec.output_schema.json_schema).warnings:
            warnings.append(Warning(type="spec_validation_warning", message=message))
    if isinstance(spec.input_schema, JsonSchema):
        schema = spec.input_schema.json_schema
        if isinstance(run_input.input, str):
            warnings.append(
                Warning(type="input_validation_warning", message="input is text but input_schema is a JSON schema")
            )
        else:
            required = schema.get("required")
            names = [str(n) for n in cast(list[object], required)] if isinstance(required, list) else []
            missing = [n for n in names if n not in run_input.input]
            if missing:
                warnings.append(
                    Warning(
                        type="input_validation_warning",
                        message=f"input lacks the required field(s) {', '.join(missing)} of input_schema",
                    )
                )
    return warnings

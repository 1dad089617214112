"""The views tools return: closed models, and a run's error as the agent sees it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from parallel_mcp.models import ErrorObject
from parallel_mcp.views import RunError, TaskRunView


def test_a_run_error_keeps_its_message_and_ref_id_and_none_stays_none() -> None:
    assert RunError.of(ErrorObject(ref_id="ref_1", message="boom")) == RunError(message="boom", ref_id="ref_1")
    assert RunError.of(ErrorObject(ref_id="", message="boom")) == RunError(message="boom", ref_id=None)
    assert RunError.of(None) is None


def test_a_view_refuses_fields_it_does_not_declare() -> None:
    with pytest.raises(ValidationError):
        TaskRunView.model_validate(
            {"run_id": "r", "status": "queued", "is_active": True, "processor": "lite", "next_step": "s", "x": 1}
        )

"""Spending guards through a real MCP client: the daily budget, and the user's yes above confirm_above_usd.

The user is asked through elicitation when the client can (both protocol eras); a client that cannot
gets a confirmation-needed result with a one-time confirm_token bound to that request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import anyio
import pytest
from mcp import Client, MCPError, types
from mcp.client.session import ClientRequestContext

from parallel_mcp import spending
from parallel_mcp.config import Settings
from parallel_mcp.emulator.config import EmulatorConfig
from parallel_mcp.intents import Intents
from parallel_mcp.server import create_server
from parallel_mcp.store import Intent
from tests.processes import server_env, stdio_clients
from tests.support import API_KEY, emulator_client, mcp_session, structured, text_of

pytestmark = pytest.mark.anyio

QUESTION = {"input": "Who founded Acme?", "processor": "lite", "wait_seconds": 0}
"""A lite run: $0.005."""


class Asked:
    """An elicitation callback that answers as told and remembers what the user was shown."""

    def __init__(self, action: Literal["accept", "decline", "cancel"], confirm: bool = True) -> None:
        self.action: Literal["accept", "decline", "cancel"] = action
        self.confirm = confirm
        self.messages: list[str] = []

    async def __call__(self, context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        assert isinstance(params, types.ElicitRequestFormParams)
        self.messages.append(params.message)
        content: dict[str, Any] | None = {"confirm": self.confirm} if self.action == "accept" else None
        return types.ElicitResult(action=self.action, content=content)


@pytest.mark.virtual_time
async def test_the_daily_budget_lets_a_call_reach_it_and_refuses_the_one_that_would_pass_it() -> None:
    async with mcp_session(EmulatorConfig(frozen=True), daily_budget_usd=0.01) as session:
        first = await session.call("create_task_run", {**QUESTION, "input": "one"})
        second = await session.call("create_task_run", {**QUESTION, "input": "two"})
        third = await session.call("create_task_run", {**QUESTION, "input": "three"})
        group = await session.call("create_task_group", {"inputs": ["a"], "processor": "lite", "wait_seconds": 0})
        runs = session.emulator.state.run_count
    assert structured(first)["run_id"] and structured(second)["run_id"]  # $0.010 of $0.01: at the budget, not above
    for refused in (third, group):
        assert refused.is_error and "daily_budget_usd" in text_of(refused) and "Nothing was created" in text_of(refused)
    assert "$0.01 was already spent today" in text_of(third)
    assert runs == 2


@pytest.mark.virtual_time
async def test_creates_sent_at_once_start_no_more_runs_than_the_daily_budget_pays_for() -> None:
    # Agents call tools in parallel: every call passes the early check before any has claimed its run.
    results: list[Any] = []
    async with mcp_session(EmulatorConfig(frozen=True), daily_budget_usd=0.01) as session:

        async def create(index: int) -> None:
            results.append(await session.call("create_task_run", {**QUESTION, "input": f"question {index}"}))

        async with anyio.create_task_group() as tasks:
            for index in range(6):
                tasks.start_soon(create, index)
        runs = session.emulator.state.run_count
    refused = [result for result in results if result.is_error]
    assert runs == 2 and len(refused) == 4
    assert all("daily_budget_usd" in text_of(result) and "Nothing was created" in text_of(result) for result in refused)


async def test_two_servers_on_one_journal_start_no_more_runs_than_the_budget_pays_for(tmp_path: Path) -> None:
    # One user, two agent windows: two stdio servers opening one new journal at once, with one key, creating
    # at once. Each must use the file (neither may fall back to a journal of its own), and claim atomically.
    results: list[Any] = []
    logged = tmp_path / "servers.log"
    async with emulator_client(EmulatorConfig(frozen=True)) as (emulator, _client):
        env = server_env(
            PARALLEL_API_KEY=API_KEY,
            PARALLEL_BASE_URL=emulator.base_url,
            PARALLEL_MCP_JOURNAL=str(tmp_path / "journal.sqlite3"),
            PARALLEL_MCP_DAILY_BUDGET_USD="0.02",
        )
        async with stdio_clients(env, logged) as windows:

            async def create(index: int) -> None:
                arguments = {**QUESTION, "input": f"question {index}"}
                results.append(await windows[index % 2].call_tool("create_task_run", arguments))

            with anyio.fail_after(30):
                async with anyio.create_task_group() as tasks:
                    for index in range(6):
                        tasks.start_soon(create, index)
        runs = emulator.state.run_count
    refused = [result for result in results if result.is_error]
    assert runs == 4 and len(refused) == 2, logged.read_text()
    assert all("daily_budget_usd" in text_of(result) for result in refused)


@pytest.mark.virtual_time
async def test_a_group_counts_every_row_against_the_budget() -> None:
    async with mcp_session(EmulatorConfig(frozen=True), daily_budget_usd=0.012) as session:
        refused = await session.call(
            "create_task_group", {"inputs": ["a", "b", "c"], "processor": "lite", "wait_seconds": 0}
        )
        fits = await session.call("create_task_group", {"inputs": ["a", "b"], "processor": "lite", "wait_seconds": 0})
    assert refused.is_error and "3 billed lite runs for $0.015" in text_of(refused)
    assert structured(fits)["task_group_id"]


@pytest.mark.virtual_time
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_the_user_is_asked_above_the_limit_and_a_yes_creates_the_run(mode: Literal["auto", "legacy"]) -> None:
    asked = Asked("accept")
    async with (
        emulator_client(EmulatorConfig(frozen=True)) as (emulator, client),
        Client(_server(client, confirm_above_usd=0.001), mode=mode, elicitation_callback=asked) as mcp,
    ):
        result = await mcp.call_tool("create_task_run", QUESTION)
        runs = emulator.state.run_count
    assert structured(result)["run_id"].startswith("trun_") and runs == 1
    (message,) = asked.messages
    assert "1 billed lite run for $0.005" in message and "$0.001" in message and "Who founded Acme?" in message


@pytest.mark.virtual_time
@pytest.mark.parametrize("mode", ["auto", "legacy"])
@pytest.mark.parametrize("answer", [Asked("decline"), Asked("cancel"), Asked("accept", confirm=False)])
async def test_a_no_from_the_user_creates_nothing_and_says_which_setting_asked(
    mode: Literal["auto", "legacy"], answer: Asked
) -> None:
    async with (
        emulator_client(EmulatorConfig(frozen=True)) as (emulator, client),
        Client(_server(client, confirm_above_usd=0.001), mode=mode, elicitation_callback=answer) as mcp,
    ):
        result = await mcp.call_tool("create_task_group", {"inputs": ["a", "b"], "processor": "lite"})
        runs = emulator.state.run_count
    assert result.is_error and runs == 0
    assert "declined" in text_of(result) and "confirm_above_usd" in text_of(result)
    assert "Nothing was created" in text_of(result)


@pytest.mark.virtual_time
async def test_below_the_limit_nobody_is_asked() -> None:
    asked = Asked("decline")
    async with (
        emulator_client(EmulatorConfig(frozen=True)) as (_emulator, client),
        Client(_server(client, confirm_above_usd=0.005), elicitation_callback=asked) as mcp,
    ):
        result = await mcp.call_tool("create_task_run", QUESTION)  # $0.005 is not above $0.005
    assert structured(result)["run_id"] and asked.messages == []


@pytest.mark.virtual_time
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_client_that_cannot_ask_gets_a_token_that_creates_the_run_once(mode: Literal["auto", "legacy"]) -> None:
    async with mcp_session(EmulatorConfig(frozen=True), mode=mode, confirm_above_usd=0.001) as session:
        pending = await session.call("create_task_run", QUESTION)
        created_before = session.emulator.state.run_count
        token = structured(pending)["confirmation"]["confirm_token"]
        confirmed = await session.call("create_task_run", {**QUESTION, "confirm_token": token})
        reused = await session.call("create_task_run", {**QUESTION, "confirm_token": token, "force_new": True})
        runs = session.emulator.state.run_count
    assert not pending.is_error and created_before == 0
    view = structured(pending)
    assert view["confirmation"] | {"confirm_token": "t"} == {
        "confirm_token": "t",
        "expires_in_seconds": 300,
        "processor": "lite",
        "runs": 1,
        "price_usd": 0.005,
        "limit_usd": 0.001,
        "input_summary": "Who founded Acme?",
    }
    assert "Confirmation needed; nothing was created" in view["next_step"] and token in text_of(pending)
    assert structured(confirmed)["run_id"] and runs == 1
    assert reused.is_error and "already used" in text_of(reused) and "confirm_above_usd" in text_of(reused)


@pytest.mark.virtual_time
async def test_only_a_token_this_call_spent_is_made_good_again_when_the_budget_refuses_the_claim(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    core = {**QUESTION, "processor": "core"}  # $0.025: above confirm_above_usd; lite ($0.005) is not
    async with mcp_session(EmulatorConfig(frozen=True), confirm_above_usd=0.006, daily_budget_usd=0.028) as session:
        token = structured(await session.call("create_task_run", core))["confirmation"]["confirm_token"]
        assert structured(await session.call("create_task_run", {**core, "confirm_token": token}))["run_id"]

        async def raced(self: Intents, intent: Intent) -> None:
            return None  # the early check passed, as it does for a create racing another

        monkeypatch.setattr(Intents, "check_budget", raced)
        # A cheap create carrying the spent token: nothing to confirm, so it spends nothing, and its refusal by
        # the claim's budget check must not make the token good again.
        cheap = await session.call("create_task_run", {**QUESTION, "confirm_token": token})
        again = await session.call("create_task_run", {**core, "confirm_token": token, "force_new": True})
        runs = session.emulator.state.run_count
    assert cheap.is_error and "daily_budget_usd" in text_of(cheap)
    assert again.is_error and "already used" in text_of(again) and runs == 1


@pytest.mark.virtual_time
async def test_a_repeat_of_a_confirmed_create_returns_its_run_without_asking_again() -> None:
    # An agent whose call was cut sends it again, token and all: the run exists, nothing is billed, and the
    # token, spent on the first call, is not asked for.
    async with mcp_session(EmulatorConfig(frozen=True), confirm_above_usd=0.001) as session:
        pending = await session.call("create_task_run", {**QUESTION, "idempotency_key": "k1"})
        token = structured(pending)["confirmation"]["confirm_token"]
        confirmed = await session.call("create_task_run", {**QUESTION, "idempotency_key": "k1", "confirm_token": token})
        again = await session.call("create_task_run", {**QUESTION, "idempotency_key": "k1", "confirm_token": token})
        bare = await session.call("create_task_run", QUESTION)  # the same body without its key or token
        forced = await session.call("create_task_run", {**QUESTION, "force_new": True})
        runs = session.emulator.state.run_count
    run_id = structured(confirmed)["run_id"]
    assert structured(again)["run_id"] == structured(bare)["run_id"] == run_id and runs == 1
    assert "confirmation" in structured(forced)  # a new run on purpose is asked for again


@pytest.mark.virtual_time
@pytest.mark.parametrize("tool", ["create_task_run", "create_task_group"])
async def test_the_user_is_asked_once_for_a_create_and_not_again_for_its_repeat(tool: str) -> None:
    asked = Asked("accept")
    arguments = (
        QUESTION if tool == "create_task_run" else {"inputs": ["a", "b"], "processor": "lite", "wait_seconds": 0}
    )
    async with (
        emulator_client(EmulatorConfig(frozen=True)) as (emulator, client),
        Client(_server(client, confirm_above_usd=0.001), elicitation_callback=asked) as mcp,
    ):
        first = await mcp.call_tool(tool, arguments)
        again = await mcp.call_tool(tool, arguments)
        runs = emulator.state.run_count
    target = "run_id" if tool == "create_task_run" else "task_group_id"
    assert structured(again)[target] == structured(first)[target]
    assert len(asked.messages) == 1 and runs == (1 if tool == "create_task_run" else 2)


@pytest.mark.virtual_time
async def test_a_repeat_is_not_refused_by_the_budget_it_does_not_spend() -> None:
    async with mcp_session(EmulatorConfig(frozen=True), daily_budget_usd=0.005) as session:
        first = await session.call("create_task_run", QUESTION)
        again = await session.call("create_task_run", QUESTION)
        other = await session.call("create_task_run", {**QUESTION, "input": "another question"})
    assert structured(again)["run_id"] == structured(first)["run_id"]
    assert other.is_error and "daily_budget_usd" in text_of(other)


@pytest.mark.virtual_time
async def test_a_token_confirms_only_the_request_it_was_issued_for() -> None:
    async with mcp_session(EmulatorConfig(frozen=True), confirm_above_usd=0.001) as session:
        token = structured(await session.call("create_task_run", QUESTION))["confirmation"]["confirm_token"]
        other = await session.call(
            "create_task_run", {**QUESTION, "input": "Who founded Initech?", "confirm_token": token}
        )
        group = await session.call(
            "create_task_group", {"inputs": ["Who founded Acme?"], "processor": "lite", "confirm_token": token}
        )
        forged = await session.call("create_task_run", {**QUESTION, "confirm_token": "pmc_forged"})
        still_good = await session.call("create_task_run", {**QUESTION, "confirm_token": token})
        runs = session.emulator.state.run_count
    assert other.is_error and "issued for a different request" in text_of(other)
    assert group.is_error and "issued for a different request" in text_of(group)
    assert forged.is_error and "not one this server issued" in text_of(forged)
    assert structured(still_good)["run_id"] and runs == 1  # refusals did not spend the token


@pytest.mark.virtual_time
async def test_a_token_expires_after_five_minutes(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1_800_000_000.0]
    monkeypatch.setattr(spending, "CLOCK", lambda: now[0])
    async with mcp_session(EmulatorConfig(frozen=True), confirm_above_usd=0.001) as session:
        token = structured(await session.call("create_task_run", QUESTION))["confirmation"]["confirm_token"]
        now[0] += 300
        late = await session.call("create_task_run", {**QUESTION, "confirm_token": token})
        runs = session.emulator.state.run_count
    assert late.is_error and "expired" in text_of(late) and runs == 0


@pytest.mark.virtual_time
async def test_the_budget_refuses_before_anyone_is_asked() -> None:
    asked = Asked("accept")
    async with (
        emulator_client(EmulatorConfig(frozen=True)) as (_emulator, client),
        Client(_server(client, confirm_above_usd=0.001, daily_budget_usd=0.001), elicitation_callback=asked) as mcp,
    ):
        result = await mcp.call_tool("create_task_run", QUESTION)
    assert result.is_error and "daily_budget_usd" in text_of(result) and asked.messages == []


def _server(client: Any, **settings: Any) -> Any:
    return create_server(Settings(emulator_speed=20, **settings), client=client, emulated=True)


async def test_a_question_asked_by_one_replica_is_answered_on_another_sharing_the_database(postgres_url: str) -> None:
    asked = Asked("accept")
    async with emulator_client(EmulatorConfig(frozen=True)) as (emulator, client):
        shared = {"database_url": postgres_url, "confirm_above_usd": 0.001}
        async with (
            Client(_server(client, **shared), elicitation_callback=asked) as replica_a,
            Client(_server(client, **shared), elicitation_callback=asked) as replica_b,
            Client(_server(client, confirm_above_usd=0.001), elicitation_callback=asked) as stranger,
        ):
            question = await replica_a.session.call_tool("create_task_run", QUESTION, allow_input_required=True)
            assert isinstance(question, types.InputRequiredResult) and question.input_requests
            (key,) = question.input_requests
            answer: types.InputResponses = {key: types.ElicitResult(action="accept", content={"confirm": True})}
            state = question.request_state
            with pytest.raises(MCPError):  # a server with a key of its own cannot open the state
                await stranger.session.call_tool(
                    "create_task_run", QUESTION, input_responses=answer, request_state=state
                )
            created = await replica_b.session.call_tool(
                "create_task_run", QUESTION, input_responses=answer, request_state=state
            )
        runs = emulator.state.run_count
    assert structured(created)["run_id"] and runs == 1

"""Spending guards of the create tools: a daily budget per owner, and the user's yes above a price.

`daily_budget_usd` refuses a create that would take its owner's spending today (UTC, in list prices)
above the budget: early here, before anyone is asked, and atomically when the create is claimed
(`Intents.claim`), where its price is reserved. `confirm_above_usd` asks the user before a create whose
runs cost more than it: through elicitation when the client can ask (`ask_to_spend_on_run`/`_group`,
resolvers that run before the tool body, in either protocol era), else with a one-time
`confirm_token` bound to that exact request, which the agent passes back once the user agreed.
Tokens are kept hashed in the store, single use, and expire after `CONFIRM_TOKEN_SECONDS`.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from mcp.server.mcpserver import AcceptedElicitation, Context, Elicit, ElicitationResult
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel, Field

from parallel_mcp.arguments import CreateGroupArguments, CreateRunArguments, group_request, parse, run_body
from parallel_mcp.config import Settings
from parallel_mcp.errors import ParallelMCPError, SpendRefused
from parallel_mcp.groups import GroupRequest, group_order
from parallel_mcp.guidance import bad_token_message, confirmation_question, declined_message
from parallel_mcp.intents import Order
from parallel_mcp.models import TaskRunInput
from parallel_mcp.processors import check_cost
from parallel_mcp.runs import run_order
from parallel_mcp.runtime import AppContext, caller
from parallel_mcp.store import EPSILON_USD
from parallel_mcp.views import ConfirmationNeeded

CONFIRM_TOKEN_SECONDS = 300
"""How long a confirm token stays valid: enough to ask the user, short enough to be about this request."""
TOKEN_PREFIX = "pmc_"
CLOCK: Callable[[], float] = time.time
"""The time tokens are issued and checked at (tests move it)."""

R = TypeVar("R")


@dataclass(frozen=True)
class CreateCall(Generic[R]):
    """A create tool's call: its arguments, and the create they ask for."""

    args: CreateRunArguments | CreateGroupArguments
    order: Order[R]


def run_call(arguments: dict[str, Any], settings: Settings) -> CreateCall[TaskRunInput]:
    """`create_task_run`'s arguments, parsed (`ArgumentError` names what is wrong)."""
    args = parse(CreateRunArguments, arguments)
    body = run_body(args, default_processor=settings.default_processor)
    return CreateCall(args, run_order(body, idempotency_key=args.idempotency_key, force_new=args.force_new))


def group_call(arguments: dict[str, Any], settings: Settings) -> CreateCall[GroupRequest]:
    """`create_task_group`'s arguments, parsed (`ArgumentError` names what is wrong)."""
    args = parse(CreateGroupArguments, arguments)
    request = group_request(args, default_processor=settings.default_processor)
    return CreateCall(args, group_order(request, idempotency_key=args.idempotency_key, force_new=args.force_new))


async def repeats(app: AppContext, owner: str, order: Order[Any]) -> bool:
    """True when this create repeats one that already made its run or group: it bills nothing, so no
    spending guard applies and nobody is asked."""
    return await app.runs.intents.repeats(order.intent(owner))


class Confirm(BaseModel):
    """The user's answer, as a form with one checkbox."""

    confirm: bool = Field(title="Start these billed runs", description="Tick to start them; leave it to refuse.")


NOT_ASKED = Confirm(confirm=False)
"""What a resolver gives when it asks nothing: never a yes."""


def token_hash(token: str) -> str:
    """What the store keeps of a confirm token."""
    return hashlib.sha256(token.encode()).hexdigest()


def needs_confirmation(settings: Settings, order: Order[Any]) -> bool:
    """True when the create costs more than `confirm_above_usd`."""
    limit = settings.confirm_above_usd
    return limit is not None and order.price_usd > limit + EPSILON_USD


def guarded(settings: Settings, order: Order[Any]) -> bool:
    """True when a spending guard looks at this create: a daily budget, or a price above `confirm_above_usd`."""
    return settings.daily_budget_usd is not None or needs_confirmation(settings, order)


def can_elicit(ctx: Context[Any, Any]) -> bool:
    """True when this request's client can be asked a question (form elicitation) in this call.

    2026-07-28 requests ask through the result (input_required), older ones with a request to the
    client, which a connection that cannot send requests (stateless HTTP) does not allow.
    """
    capabilities = ctx.client_capabilities
    elicitation = capabilities.elicitation if capabilities is not None else None
    if elicitation is None or (elicitation.form is None and elicitation.url is not None):
        return False
    return ctx.protocol_version in MODERN_PROTOCOL_VERSIONS or bool(ctx.session.can_send_request)


@dataclass(frozen=True)
class Passage:
    """What the guards said of a create that may go ahead: the confirmation it still waits for, if any, and the
    hash of the confirm token this call spent, if it spent one (made good again should the create be refused)."""

    pending: ConfirmationNeeded | None = None
    redeemed: str | None = None


async def guard(
    app: AppContext,
    ctx: Context[Any, Any],
    owner: str,
    order: Order[Any],
    *,
    token: str | None,
    approval: ElicitationResult[Confirm],
) -> Passage:
    """Let a create go ahead, or say what confirmation it waits for; refuse what may not go ahead.

    Raises:
        SpendRefused: over the daily budget, declined by the user, or a confirm token that is not this
            request's, is used or has expired.
    """
    settings = app.settings
    await app.runs.intents.check_budget(order.intent(owner))
    limit = settings.confirm_above_usd
    if limit is None or not needs_confirmation(settings, order):
        return Passage()
    now = CLOCK()
    if token:
        redeemed = token_hash(token)
        outcome = await app.store.redeem_confirmation(owner, redeemed, order.fingerprint, now)
        if outcome != "ok":
            raise SpendRefused(bad_token_message(outcome, order.kind, limit))
        return Passage(redeemed=redeemed)
    if can_elicit(ctx):
        if isinstance(approval, AcceptedElicitation) and approval.data.confirm:
            return Passage()
        raise SpendRefused(declined_message(order, limit))
    issued = TOKEN_PREFIX + secrets.token_urlsafe(18)
    await app.store.issue_confirmation(owner, token_hash(issued), order.fingerprint, now + CONFIRM_TOKEN_SECONDS)
    pending = ConfirmationNeeded(
        confirm_token=issued,
        expires_in_seconds=CONFIRM_TOKEN_SECONDS,
        processor=order.processor,
        runs=order.runs,
        price_usd=round(order.price_usd, 6),
        limit_usd=limit,
        input_summary=order.summary,
    )
    return Passage(pending=pending)


# -- resolvers: asking the user before the tool body runs ------------------------------------------


def _arguments(ctx: Context[Any, Any]) -> dict[str, Any]:
    """The tool call's arguments as the client sent them (the same ones the tool body parses)."""
    params = ctx.request_context.params or {}
    arguments = params.get("arguments")
    return dict(cast(Mapping[str, Any], arguments)) if isinstance(arguments, Mapping) else {}


async def _ask(
    ctx: Context[Any, Any], call_of: Callable[[dict[str, Any], Settings], CreateCall[Any]]
) -> Elicit[Confirm] | Confirm:
    """Ask the user when the tool body will need their yes; in every other case ask nothing.

    Whatever is wrong with the call (its arguments, the price limit, the budget) is left to the tool
    body to say: nobody is asked to approve a call that will be refused anyway.
    """
    app = cast(AppContext, ctx.request_context.lifespan_context)
    limit = app.settings.confirm_above_usd
    arguments = _arguments(ctx)
    if limit is None or arguments.get("confirm_token") or not can_elicit(ctx):
        return NOT_ASKED
    try:
        order = call_of(arguments, app.settings).order
        if not needs_confirmation(app.settings, order):
            return NOT_ASKED
        check_cost(order.processor, app.settings.max_cost_usd)
        who = await caller(app, ctx.headers)
        if await repeats(app, who.owner, order):
            return NOT_ASKED
        await app.runs.intents.check_budget(order.intent(who.owner))
    except ParallelMCPError:
        return NOT_ASKED
    question = confirmation_question(order, limit, order.summary)
    return Elicit(question, Confirm)


async def ask_to_spend_on_run(ctx: Context[Any, Any]) -> Elicit[Confirm] | Confirm:
    """Resolver of `create_task_run`: the user's yes to a run above `confirm_above_usd`."""
    return await _ask(ctx, run_call)


async def ask_to_spend_on_group(ctx: Context[Any, Any]) -> Elicit[Confirm] | Confirm:
    """Resolver of `create_task_group`: the user's yes to a group above `confirm_above_usd`."""
    return await _ask(ctx, group_call)

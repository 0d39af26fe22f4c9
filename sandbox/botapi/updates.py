"""Bot API methods that hand updates to the bot: getUpdates and the webhook settings.

getUpdates long-polls: it answers as soon as an update is pending, or with an
empty list after `timeout` seconds. A newer getUpdates ends an older one with
409, and getUpdates while a webhook is set is a 409 too, as on Telegram.
"""

from __future__ import annotations

import re
import time

from sandbox.botapi.context import Context
from sandbox.botapi.errors import bad_request, conflict
from sandbox.botapi.params import Params
from sandbox.botapi.records import JSON, WebhookConfig
from sandbox.botapi.state import DEFAULT_UPDATE_TYPES

#: Most updates one getUpdates returns.
MAX_UPDATES = 100
#: Longest long poll the server holds.
MAX_POLL_TIMEOUT = 50  # seconds
#: Characters allowed in a webhook secret token (1-256 of them).
SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")
#: Webhook connections allowed (setWebhook's max_connections).
MAX_CONNECTIONS = (1, 100)


async def get_updates(ctx: Context, params: Params) -> list[JSON]:
    """getUpdates: confirm up to `offset`, then wait up to `timeout` for updates."""
    world = ctx.world
    with world.lock:
        if world.webhook is not None:
            raise conflict(
                "can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first"
            )
        offset = params.integer("offset")
        limit = min(max(params.integer("limit") or MAX_UPDATES, 1), MAX_UPDATES)
        timeout = min(max(params.integer("timeout") or 0, 0), MAX_POLL_TIMEOUT)
        allowed = params.json("allowed_updates")
        if allowed is not None:
            if not isinstance(allowed, list):
                raise bad_request("can't parse allowed_updates JSON object")
            world.set_allowed_updates([str(kind) for kind in allowed])
        if offset is not None:
            world.confirm_updates(offset)
        world.poll_generation += 1
        generation = world.poll_generation
    world.changes.bump()  # wakes an older long poll, which then steps aside
    deadline = time.monotonic() + timeout
    while True:
        with world.lock:
            if world.poll_generation != generation:
                raise conflict(
                    "terminated by other getUpdates request; "
                    "make sure that only one bot instance is running"
                )
            version = world.changes.version
            updates = world.next_updates(limit)
            remaining = deadline - time.monotonic()
            if updates or world.closed or remaining <= 0 or world.webhook is not None:
                return updates
        await world.changes.wait(version, remaining)


def set_webhook(ctx: Context, params: Params) -> bool:
    """setWebhook: POST updates to `url` from now on (an empty url removes it)."""
    world = ctx.world
    url = params.text("url") or ""
    if not url:
        world.webhook = None
        world.changes.bump()
        return True
    if not url.lower().startswith(("http://", "https://")):
        raise bad_request("bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443")
    secret = params.text("secret_token")
    if secret is not None and not SECRET_TOKEN.fullmatch(secret):
        raise bad_request("secret token contains unallowed characters")
    connections = params.integer("max_connections") or 40
    if not MAX_CONNECTIONS[0] <= connections <= MAX_CONNECTIONS[1]:
        raise bad_request("bad webhook: max_connections must be between 1 and 100")
    allowed = params.json("allowed_updates")
    if allowed is not None:
        world.set_allowed_updates([str(kind) for kind in allowed])
    if params.flag("drop_pending_updates"):
        world.drop_pending()
    world.webhook = WebhookConfig(url=url, secret_token=secret, max_connections=connections)
    world.changes.bump()
    return True


def delete_webhook(ctx: Context, params: Params) -> bool:
    """deleteWebhook: back to getUpdates, optionally dropping pending updates."""
    world = ctx.world
    world.webhook = None
    if params.flag("drop_pending_updates"):
        world.drop_pending()
    world.changes.bump()
    return True


def get_webhook_info(ctx: Context, params: Params) -> JSON:
    """getWebhookInfo: the URL, the backlog and the last delivery error."""
    world = ctx.world
    hook = world.webhook
    info: JSON = {
        "url": hook.url if hook else "",
        "has_custom_certificate": False,
        "pending_update_count": len(world.pending),
    }
    if hook is not None:
        info["max_connections"] = hook.max_connections
        info["ip_address"] = "127.0.0.1"
        if hook.last_error_date is not None:
            info["last_error_date"] = hook.last_error_date
            info["last_error_message"] = hook.last_error_message
        if world.allowed_updates != DEFAULT_UPDATE_TYPES:
            info["allowed_updates"] = sorted(world.allowed_updates)
    return info

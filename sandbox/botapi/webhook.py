"""Delivery of updates to a webhook, as Telegram does it.

While a webhook is set, pending updates are POSTed to its URL one by one, in
order, as JSON with the `X-Telegram-Bot-Api-Secret-Token` header when a secret
was given. An update is confirmed only by a 2xx answer; otherwise the error is
kept for getWebhookInfo and the update is tried again after a growing pause.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aiohttp

from sandbox.botapi.state import World, unix_now

#: Header that carries the webhook's secret token.
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
#: How long one delivery may take before it counts as failed.
DELIVERY_TIMEOUT = 10.0  # seconds
#: Pauses between attempts to deliver the same update; the last one repeats.
RETRY_DELAYS = (0.1, 0.25, 0.5, 1.0, 2.0)  # seconds
#: How long the pusher sleeps when there is nothing to deliver, at most.
IDLE_WAIT = 5.0  # seconds

_LOGGER = logging.getLogger(__name__)


class WebhookPusher:
    """A task on the server's loop that delivers pending updates to the webhook."""

    def __init__(self, world: World) -> None:
        self.world = world
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start delivering (on the running loop)."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="webhook-pusher")

    async def stop(self) -> None:
        """Stop delivering; an update in flight stays pending."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        attempts = 0
        async with aiohttp.ClientSession() as session:
            while not self.world.closed:
                with self.world.lock:
                    version = self.world.changes.version
                    hook = self.world.webhook
                    updates = self.world.next_updates(1) if hook is not None else []
                if hook is None or not updates:
                    attempts = 0
                    await self.world.changes.wait(version, IDLE_WAIT)
                    continue
                update = updates[0]
                error = await self._post(session, hook.url, hook.secret_token, update)
                with self.world.lock:
                    if error is None:
                        attempts = 0
                        hook.delivered += 1
                        self.world.confirm_updates(update["update_id"] + 1)
                        continue
                    hook.last_error_date = unix_now()
                    hook.last_error_message = error
                delay = RETRY_DELAYS[min(attempts, len(RETRY_DELAYS) - 1)]
                attempts += 1
                _LOGGER.debug("webhook delivery failed (%s); retrying in %.2fs", error, delay)
                await asyncio.sleep(delay)

    async def _post(
        self,
        session: aiohttp.ClientSession,
        url: str,
        secret: str | None,
        update: dict[str, object],
    ) -> str | None:
        # None on success, else Telegram's wording of what went wrong.
        headers = {SECRET_HEADER: secret} if secret else {}
        try:
            async with session.post(
                url,
                json=update,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=DELIVERY_TIMEOUT),
            ) as response:
                await response.read()
                if 200 <= response.status < 300:
                    return None
                return f"Wrong response from the webhook: {response.status} {response.reason}"
        except TimeoutError:
            return "Read timeout expired"
        except aiohttp.ClientError as exc:
            return f"Connection failed: {exc}"

"""Acknowledging a micro-batch with as few frames as the broker allows.

When every delivery before a batch's messages is settled, one `basic.ack(multiple=True)` on its
last delivery tag acks them all; a batch that finishes while an earlier one is still at work is
acked message by message instead, so nothing settled ever holds a prefetch slot. Delivery tags
are per channel: a reconnect starts a new channel and a new window.
"""

from __future__ import annotations

from collections.abc import Iterable

from aio_pika.abc import AbstractIncomingMessage


class BatchAcks:
    def __init__(self) -> None:
        # channel -> delivery tag -> message, in delivery order (tags only grow on a channel).
        self._unsettled: dict[object, dict[int, AbstractIncomingMessage]] = {}

    def delivered(self, message: AbstractIncomingMessage) -> None:
        self._window(message)[message.delivery_tag] = message

    def forget(self, message: AbstractIncomingMessage) -> None:
        """The message is settled some other way (nacked)."""
        self._window(message).pop(message.delivery_tag, None)

    async def ack(self, messages: Iterable[AbstractIncomingMessage]) -> None:
        by_channel: dict[object, list[AbstractIncomingMessage]] = {}
        for message in messages:
            by_channel.setdefault(message.channel, []).append(message)
        for channel, settled in by_channel.items():
            window = self._unsettled.get(channel, {})
            tags = {message.delivery_tag for message in settled}
            head = 0
            for tag in window:  # the run of settled tags at the front of the window
                if tag not in tags:
                    break
                head = tag
            blocked = [message for message in settled if message.delivery_tag > head]
            for message in settled:
                window.pop(message.delivery_tag, None)
            if head:
                await next(m for m in settled if m.delivery_tag == head).ack(multiple=True)
            for message in blocked:
                await message.ack()
        self._forget_closed_channels()

    def _window(self, message: AbstractIncomingMessage) -> dict[int, AbstractIncomingMessage]:
        return self._unsettled.setdefault(message.channel, {})

    def _forget_closed_channels(self) -> None:
        for channel in [c for c in self._unsettled if getattr(c, "is_closed", False)]:
            del self._unsettled[channel]

"""Standard Webhooks signatures: the headers that let a receiver check a delivery.

    webhook-id         the event's id, the same on every attempt (receivers dedupe on it)
    webhook-timestamp  this attempt's time, integer seconds (receivers refuse stale ones)
    webhook-signature  v1,<base64 HMAC-SHA256 of "id.timestamp.body"> keyed with the bytes
                       that `whsec_<base64>` encodes

Signed by the `standardwebhooks` package, the specification's reference library, so what
we sign is by construction what its verifiers (and every other implementation) check.
The secret is parsed strictly by `config` (the library's constructor accepts any text),
and the key bytes are given to it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from standardwebhooks import Webhook


class Signer:
    """Signs deliveries with one key (the decoded `MEDIASVC_WEBHOOK_SECRET`)."""

    def __init__(self, key: bytes) -> None:
        self._webhook = Webhook(key)

    def headers(self, event_id: str, timestamp: int, body: str) -> dict[str, str]:
        """The three `webhook-*` headers of one attempt to send `body`."""
        signature = self._webhook.sign(event_id, datetime.fromtimestamp(timestamp, UTC), body)
        return {
            "webhook-id": event_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature,
        }

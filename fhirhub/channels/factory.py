"""The channels configured in the settings (FHIRHUB_SMTP_URL, FHIRHUB_SMS_URL; rest-hook
always, within the notification address allowlist)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fhirhub.channels.email import EmailChannel, SmtpConfig
from fhirhub.channels.message import EMAIL, REST_HOOK, SMS, Message
from fhirhub.channels.records import communication
from fhirhub.channels.resthook import RestHookChannel
from fhirhub.channels.service import Channel, Channels, Recorder
from fhirhub.channels.sms import SmsChannel
from fhirhub.config import Settings
from fhirhub.storage.outbound import OutboundStore
from fhirhub.subscriptions.address_policy import AddressPolicy
from fhirhub.worker.sender import Sender


def build_channels(
    settings: Settings, store: OutboundStore, record: Recorder, exists: Callable[[str], bool]
) -> Channels:
    timeout_s = settings.notify_timeout_ms / 1000
    available: dict[str, Channel] = {}
    if settings.smtp_url:
        config = SmtpConfig.from_url(settings.smtp_url, settings.smtp_from)
        available[EMAIL] = EmailChannel(config, timeout_s)
    if settings.sms_url:
        available[SMS] = SmsChannel(settings.sms_url, settings.sms_from, timeout_s)

    def render(message: Message) -> dict[str, Any]:
        return communication(message, "completed")

    sender = Sender(AddressPolicy.from_settings(settings), timeout_s)
    available[REST_HOOK] = RestHookChannel(sender, render)
    return Channels(available, store, record, exists)

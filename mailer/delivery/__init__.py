"""Delivery: the claiming loop, transports (SMTP pool, Maildir), retry policy."""

from mailer.config import Settings
from mailer.db.outbox import ClaimedDigest
from mailer.delivery.feed import OutboxFeed
from mailer.delivery.policy import RetryPolicy
from mailer.delivery.refusal import Refusal, SmtpPermanentError, SmtpTransientError, Stage
from mailer.delivery.shutdown import stop_on_signals
from mailer.delivery.smtp import SmtpConfig, SmtpTransport
from mailer.delivery.transport import MaildirTransport, Outgoing, Transport, WireMessage
from mailer.delivery.worker import DeliveryReport, deliver_due, stamp_message_id

__all__ = [
    "ClaimedDigest",
    "DeliveryReport",
    "MaildirTransport",
    "OutboxFeed",
    "Outgoing",
    "Refusal",
    "RetryPolicy",
    "SmtpConfig",
    "SmtpPermanentError",
    "SmtpTransientError",
    "SmtpTransport",
    "Stage",
    "Transport",
    "WireMessage",
    "deliver_due",
    "stamp_message_id",
    "stop_on_signals",
    "transport_from_settings",
]


def transport_from_settings(settings: Settings) -> Transport:
    """The SMTP pool when ``MAILER_SMTP_HOST`` is set, else the Maildir at ``MAILER_OUTBOX_DIR``."""
    if settings.smtp_host:
        return SmtpTransport(SmtpConfig.from_settings(settings))
    return MaildirTransport(settings.outbox_dir)

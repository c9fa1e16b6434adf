"""Deployment settings read from CDK context (``cdk deploy -c senderEmail=...`` or the
``context`` of cdk.json), validated at synth time so that a typo fails the synth instead
of a send.

- ``senderEmail``: the From address of every email (default ``nudge@example.com``);
  ``"Name <address>"`` is accepted.
- ``senderDomain``: the SES identity to create and send from (default: the domain of
  ``senderEmail``).
- ``appUrl``: the product's own URL, for links in messages (default ``""``).
- ``apnsApplicationArn`` / ``fcmApplicationArn``: existing SNS platform applications for
  mobile push (default: none, and then no push permissions at all).
- ``smsType``: ``Transactional`` (default) or ``Promotional``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import parseaddr

from constructs import Node

DEFAULT_SENDER_EMAIL = "nudge@example.com"
SMS_TYPES = ("Transactional", "Promotional")

_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$", re.I)
_PLATFORM_APP = re.compile(
    r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:app/(APNS|APNS_SANDBOX|GCM)/[^/]+$"
)


class ContextError(ValueError):
    """A CDK context value that cannot work."""


def _string(node: Node, key: str, default: str) -> str:
    value = node.try_get_context(key)
    if value is None:
        return default
    if not isinstance(value, str):
        raise ContextError(f"context {key!r} must be a string, got {value!r}")
    return value.strip()


@dataclass(frozen=True)
class DeliveryContext:
    sender_email: str
    sender_domain: str
    app_url: str
    apns_application_arn: str
    fcm_application_arn: str
    sms_type: str

    @classmethod
    def from_node(cls, node: Node) -> DeliveryContext:
        sender_email = _string(node, "senderEmail", DEFAULT_SENDER_EMAIL)
        address = parseaddr(sender_email)[1]
        if address.count("@") != 1:
            raise ContextError(f"context 'senderEmail' is not an email address: {sender_email!r}")
        sender_domain = _string(node, "senderDomain", "") or address.rsplit("@", 1)[1]
        sender_domain = sender_domain.lower()
        if not _DOMAIN.match(sender_domain):
            raise ContextError(f"context 'senderDomain' is not a domain name: {sender_domain!r}")
        address_domain = address.rsplit("@", 1)[1].lower()
        if address_domain != sender_domain and not address_domain.endswith("." + sender_domain):
            raise ContextError(
                f"senderEmail {address!r} is not in senderDomain {sender_domain!r}: SES would "
                "refuse to send from it"
            )
        apps = {}
        for key in ("apnsApplicationArn", "fcmApplicationArn"):
            arn = _string(node, key, "")
            if arn and not _PLATFORM_APP.match(arn):
                raise ContextError(
                    f"context {key!r} is not an SNS platform application ARN "
                    f"(arn:aws:sns:REGION:ACCOUNT:app/PLATFORM/NAME): {arn!r}"
                )
            apps[key] = arn
        sms_type = _string(node, "smsType", SMS_TYPES[0])
        if sms_type not in SMS_TYPES:
            raise ContextError(f"context 'smsType' must be one of {SMS_TYPES}, got {sms_type!r}")
        return cls(
            sender_email=sender_email,
            sender_domain=sender_domain,
            app_url=_string(node, "appUrl", ""),
            apns_application_arn=apps["apnsApplicationArn"],
            fcm_application_arn=apps["fcmApplicationArn"],
            sms_type=sms_type,
        )

    @property
    def platform_application_arns(self) -> list[str]:
        return [a for a in (self.apns_application_arn, self.fcm_application_arn) if a]

    @property
    def platform_endpoint_arns(self) -> list[str]:
        """The endpoints of the configured applications (``...:endpoint/PLATFORM/NAME/*``):
        created per device at run time, so only known by their application."""
        return [a.replace(":app/", ":endpoint/", 1) + "/*" for a in self.platform_application_arns]

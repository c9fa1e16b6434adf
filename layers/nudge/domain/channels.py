"""The delivery channels, named once: the fatigue guard, delivery, templates, unsubscribe
tokens, the API document and the command line take them from here."""

from __future__ import annotations

from typing import Literal, get_args

Channel = Literal["email", "sms", "push", "inapp"]
CHANNELS: tuple[Channel, ...] = get_args(Channel)  # in this order wherever they are listed

ALL_CHANNELS: Literal["all"] = "all"  # an opt-out (or unsubscribe link) of every channel
OptOutChannel = Literal[Channel, "all"]  # what a user can opt out of
OPT_OUT_CHANNELS: tuple[OptOutChannel, ...] = get_args(OptOutChannel)

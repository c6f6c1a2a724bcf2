"""Form fields read from a request and checked one by one, so every error shows at once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from starlette.datastructures import UploadFile
from starlette.requests import Request

from mailer.addresses import normalise_email
from mailer.context import Defaults
from mailer.errors import InputError, ProfileError
from mailer.matching import parse_profile
from mailer.schedule import is_valid_timezone, parse_send_time, parse_weekday
from mailer.subscribers.manage import SubscriberInput

MAX_FIELDS = 32
# Generous caps: the validators give the real limits and the messages; these only stop
# megabytes of text from reaching them (the body limit already bounds the total).
MAX_FIELD_CHARS = 20_000


class FormError(InputError):
    """A request body that is not a form we can read."""


async def read_form(request: Request) -> dict[str, str]:
    """The submitted text fields (files are refused), last value wins."""
    try:
        form = await request.form(max_files=0, max_fields=MAX_FIELDS)
    except Exception as exc:  # starlette raises HTTPException or MultiPartException subclasses
        raise FormError(f"the form could not be read: {exc}") from None
    values: dict[str, str] = {}
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            raise FormError("file uploads are not accepted")
        values[name] = value[:MAX_FIELD_CHARS].replace("\0", "")
    return values


@dataclass
class Choices:
    """A subscriber's delivery choices as typed into a form (strings, not yet validated)."""

    profile: str = ""
    frequency: str = "daily"
    weekday: str = "0"
    send_time: str = "08:00"
    timezone: str = "UTC"

    @classmethod
    def from_form(cls, form: Mapping[str, str], defaults: Defaults) -> Choices:
        """The choices in a submitted form, defaults for the missing ones."""
        return cls(
            profile=form.get("profile", ""),
            frequency=form.get("frequency", "").strip().lower() or "daily",
            weekday=form.get("weekday", "").strip() or "0",
            send_time=form.get("send_time", "").strip() or defaults.send_time,
            timezone=form.get("timezone", "").strip() or defaults.timezone,
        )


@dataclass
class SignupForm:
    """The signup form: address, choices, and per-field error messages."""

    email: str = ""
    choices: Choices = field(default_factory=Choices)
    errors: dict[str, str] = field(default_factory=dict)
    smtputf8: bool = False  # may the address need SMTPUTF8 (MAILER_SMTPUTF8)?

    @classmethod
    def from_form(cls, form: Mapping[str, str], defaults: Defaults) -> SignupForm:
        """The signup form as submitted."""
        return cls(
            email=form.get("email", "").strip(),
            choices=Choices.from_form(form, defaults),
            smtputf8=defaults.smtputf8,
        )

    def validate(self) -> bool:
        """Check every field; True when there are no errors."""
        try:
            normalise_email(self.email, smtputf8=self.smtputf8)
        except InputError as exc:
            self.errors["email"] = str(exc)
        self.errors.update(check_choices(self.choices))
        return not self.errors

    def to_input(self) -> SubscriberInput:
        """The validated form as input for the signup service."""
        return SubscriberInput(
            email=self.email,
            profile=self.choices.profile,
            frequency=self.choices.frequency,
            send_time=self.choices.send_time,
            timezone=self.choices.timezone,
            weekday=self.choices.weekday,
        )


def check_choices(choices: Choices) -> dict[str, str]:
    """Error messages by field name for the delivery choices (empty when all are fine)."""
    errors: dict[str, str] = {}
    try:
        parse_profile(choices.profile.strip())
    except ProfileError as exc:
        errors["profile"] = str(exc)
    if choices.frequency not in ("daily", "weekly"):
        errors["frequency"] = "choose daily or weekly"
    try:
        parse_weekday(choices.weekday)
    except ValueError as exc:
        errors["weekday"] = str(exc)
    try:
        parse_send_time(choices.send_time)
    except ValueError as exc:
        errors["send_time"] = str(exc)
    if not is_valid_timezone(choices.timezone):
        errors["timezone"] = (
            f"unknown time zone {choices.timezone[:64]!r}; choose one from the list, "
            "e.g. Europe/Berlin"
        )
    return errors

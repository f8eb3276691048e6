"""The signup API: JSON in, JSON out, and a clear 4xx for every kind of bad input.

Errors the views do not answer themselves (unknown paths, wrong methods, an unreachable database)
are turned into JSON by core.middleware.ApiErrorMiddleware.
"""

import json
import math
import uuid

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from django_ratelimit.core import get_usage

from signups.ceilings import client_prefix, prefix_rate, process_ceiling_wait
from signups.mailbox import InvalidMailbox, delivery_address, identity
from signups.models import Signup
from signups.tasks import enqueue_welcome_email

RATE_LIMIT_GROUP = "signups.create"
PREFIX_LIMIT_GROUP = "signups.create.prefix"


class MailboxField(forms.EmailField):
    """An email address in its delivery form (signups.mailbox), validated after normalization."""

    def to_python(self, value: object) -> str:
        text = super().to_python(value)
        if text in self.empty_values:
            return text
        try:
            return delivery_address(text)
        except InvalidMailbox as exc:
            raise ValidationError(str(exc), code="invalid") from None


class SignupForm(forms.Form):
    email = MailboxField(max_length=254)


def error(http_status: int, message: str, **extra: object) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=http_status)


def signup_body(signup: Signup) -> dict:
    return {"id": str(signup.pk), "status": signup.status}


def signup_rate(group: str, request: HttpRequest) -> str:
    return settings.SIGNUP_RATE_LIMIT


def rate_limited(request: HttpRequest) -> JsonResponse | None:
    """429 once this client has used up SIGNUP_RATE_LIMIT (per address, from core.client) or its
    IPv6 /48 SIGNUP_PREFIX_RATE_LIMIT; 503 once this process has taken its ceiling (signups.ceilings)."""
    for group, key, rate, message in (
        (RATE_LIMIT_GROUP, "ip", signup_rate, "too many signups from this address"),
        (PREFIX_LIMIT_GROUP, client_prefix, prefix_rate, "too many signups from this network"),
    ):
        usage = get_usage(request, group=group, key=key, rate=rate, method="POST", increment=True)
        if usage is not None and usage["should_limit"]:  # None: under no limit, or no cache (fail open)
            response = error(429, f"{message}; try again later")
            response["Retry-After"] = str(max(usage["time_left"], 1))
            return response
    wait = process_ceiling_wait()
    if wait:
        response = error(503, "signups are busier than this service takes; try again shortly")
        response["Retry-After"] = str(math.ceil(wait))
        return response
    return None


def parse_body(request: HttpRequest) -> dict | JsonResponse:
    """The request's JSON object, or the error response that explains why there is none."""
    if request.content_type != "application/json":
        return error(415, "Content-Type must be application/json")
    declared_length = request.META.get("CONTENT_LENGTH") or "0"
    if not (declared_length.isascii() and declared_length.isdigit()):
        return error(400, "Content-Length must be a number")
    try:
        # A body over DATA_UPLOAD_MAX_MEMORY_SIZE raises here; the API middleware answers 413.
        payload = json.loads(request.body)
    # ValueError covers an integer longer than sys.get_int_max_str_digits() (4,300 digits) too.
    except (ValueError, RecursionError) as exc:
        return error(400, f"request body is not valid JSON: {type(exc).__name__}")
    if not isinstance(payload, dict):
        return error(400, "request body must be a JSON object")
    return payload


# No cookies or sessions are involved, so there is no cross-site request to forge.
@csrf_exempt
@require_POST
def create_signup(request: HttpRequest) -> JsonResponse:
    """Store a signup and enqueue its welcome email; answers 202 without waiting for the email.

    Every spelling of an address that is already signed up (letter case, Unicode forms, IDN
    domains) answers 202 with the existing signup, so a client may safely retry after a timeout or
    a 503.
    """
    limited = rate_limited(request)
    if limited:
        return limited
    payload = parse_body(request)
    if isinstance(payload, JsonResponse):
        return payload
    form = SignupForm(payload)
    if not form.is_valid():
        return error(400, "invalid signup", errors=form.errors.get_json_data())

    signup = store_signup(form.cleaned_data["email"])
    if isinstance(signup, JsonResponse):
        return signup
    return enqueue_response(signup)


def store_signup(email: str) -> Signup | JsonResponse:
    """The new signup, or the answer for a mailbox that is already signed up."""
    canonical = identity(email)
    try:
        with transaction.atomic():
            return Signup.objects.create(email=email, email_canonical=canonical)
    except IntegrityError:
        existing = Signup.objects.filter(email_canonical=canonical).first() or Signup.objects.filter(
            email__iexact=email
        ).first()
        if existing is None:  # the other signup was deleted between the insert and this read
            return error(409, "this address changed concurrently; try again")
        return JsonResponse(signup_body(existing), status=202)


def enqueue_response(signup: Signup) -> JsonResponse:
    """The row is committed before its message exists: the worker always finds it. Without a
    broker the signup stays saved and the sweep sends its email later."""
    if not enqueue_welcome_email(signup.pk):
        response = error(
            503,
            "the task queue is unavailable; the signup is saved and its email will be sent later",
            **signup_body(signup),
        )
        response["Retry-After"] = "30"
        return response
    return JsonResponse(signup_body(signup), status=202)


@require_GET
def signup_detail(request: HttpRequest, signup_id: uuid.UUID) -> JsonResponse:
    signup = Signup.objects.filter(pk=signup_id).first()
    if signup is None:
        return error(404, "no signup with this id")
    return JsonResponse(
        {
            **signup_body(signup),
            "attempts": signup.attempts,
            "created_at": signup.created_at.isoformat(),
            "updated_at": signup.updated_at.isoformat(),
            "sent_at": signup.sent_at.isoformat() if signup.sent_at else None,
        }
    )

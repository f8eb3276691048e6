"""The signup API: JSON in, JSON out, and a clear 4xx for every kind of bad input."""

import json
import uuid

from django import forms
from django.db import IntegrityError, transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from signups.models import Signup
from signups.tasks import enqueue_welcome_email

MAX_BODY_BYTES = 64 * 1024


class SignupForm(forms.Form):
    email = forms.EmailField(max_length=254)


def error(http_status: int, message: str, **extra: object) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=http_status)


def signup_body(signup: Signup) -> dict:
    return {"id": str(signup.pk), "status": signup.status}


# No cookies or sessions are involved, so there is no cross-site request to forge.
@csrf_exempt
@require_POST
def create_signup(request: HttpRequest) -> JsonResponse:
    """Store a signup and enqueue its welcome email; answers 202 without waiting for the email.

    A second signup with the same email (any letter case) is not an error: it answers 202 with the
    existing signup, so a client may safely retry after a timeout or a 503.
    """
    if request.content_type != "application/json":
        return error(415, "Content-Type must be application/json")
    declared_length = int(request.META.get("CONTENT_LENGTH") or 0)
    if declared_length > MAX_BODY_BYTES:
        return error(413, f"request body is larger than {MAX_BODY_BYTES} bytes")
    try:
        payload = json.loads(request.body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return error(400, f"request body is not valid JSON: {exc}")
    if not isinstance(payload, dict):
        return error(400, "request body must be a JSON object")
    form = SignupForm(payload)
    if not form.is_valid():
        return error(400, "invalid signup", errors=form.errors.get_json_data())

    email = form.cleaned_data["email"]
    try:
        with transaction.atomic():
            signup = Signup.objects.create(email=email)
    except IntegrityError:
        existing = Signup.objects.get(email__iexact=email)
        return JsonResponse(signup_body(existing), status=202)

    # The row is committed before its message exists: the worker always finds it.
    if not enqueue_welcome_email(signup):
        return error(
            503,
            "the task queue is unavailable; the signup is saved and its email will be sent later",
            **signup_body(signup),
        )
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

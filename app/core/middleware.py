"""Middleware that must run before anything else in the stack."""

import re
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

from core import logging as log_context

LIVENESS_PATH = "/healthz"
REQUEST_ID_HEADER = "X-Request-ID"
# What a client or the load balancer may pass as a request id (e.g. the ALB's X-Amzn-Trace-Id).
TRUSTED_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:;=-]{1,200}$")


class LivenessMiddleware:
    """Answers GET /healthz before host validation, the HTTPS redirect and any database access.

    The ALB health check sends the target's IP address as Host over plain HTTP; a 400 or 301 would
    mark every task unhealthy. Liveness means "this process serves requests", nothing more, so a
    database failover does not make ECS replace every web task.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path == LIVENESS_PATH and request.method in ("GET", "HEAD"):
            return JsonResponse({"status": "ok"})
        return self.get_response(request)


class RequestIdMiddleware:
    """Gives every request an id, logs it with each line and returns it as X-Request-ID."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        current_id = self.incoming_id(request) or uuid.uuid4().hex
        token = log_context.request_id.set(current_id)
        try:
            response = self.get_response(request)
        finally:
            log_context.request_id.reset(token)
        response[REQUEST_ID_HEADER] = current_id
        return response

    @staticmethod
    def incoming_id(request: HttpRequest) -> str | None:
        for header in (REQUEST_ID_HEADER, "X-Amzn-Trace-Id"):
            value = request.headers.get(header, "")
            if TRUSTED_REQUEST_ID.match(value):
                return value
        return None

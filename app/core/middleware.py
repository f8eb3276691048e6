"""Middleware that must run before anything else in the stack."""

import logging
import re
import uuid
from collections.abc import Callable

import kombu.exceptions
import redis
from django import db
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse

from core import logging as log_context

logger = logging.getLogger(__name__)

LIVENESS_PATH = "/healthz"
API_PREFIX = "/api/"
# A dependency that is down for now (database restart or failover, Redis outage): the client
# should come back, so these answer 503 with Retry-After instead of a 500.
DEPENDENCY_ERRORS = (
    db.OperationalError,
    db.InterfaceError,
    redis.ConnectionError,
    redis.TimeoutError,
    kombu.exceptions.OperationalError,
)
RETRY_AFTER_SECONDS = 10
# Headers of an error response that still mean something once its body is JSON.
KEPT_HEADERS = ("Allow", "Retry-After")
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


class ApiErrorMiddleware:
    """Every answer under /api/ is JSON: unknown paths, wrong methods, bodies too large, outages.

    Views answer their own errors in JSON. What Django produces itself (404 from the URL resolver,
    405 from the method decorators, 400 for a rejected Host, the 500 page) is rewritten here, and
    an unreachable dependency becomes 503 with Retry-After.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        is_json = response.get("Content-Type", "").startswith("application/json")
        if request.path.startswith(API_PREFIX) and response.status_code >= 400 and not is_json:
            return self.as_json(response)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not request.path.startswith(API_PREFIX):
            return None
        if isinstance(exception, DEPENDENCY_ERRORS):
            logger.warning(
                "%s %s: a dependency is unavailable (%s)",
                request.method, request.path, type(exception).__name__,
            )
            response = JsonResponse(
                {"error": "a service this API needs is unavailable; try again shortly"}, status=503
            )
            response["Retry-After"] = str(RETRY_AFTER_SECONDS)
            return response
        if isinstance(exception, RequestDataTooBig):  # a body without Content-Length, read past the limit
            return JsonResponse({"error": "request body is too large"}, status=413)
        return None  # Django logs it and answers 500, which __call__ turns into JSON

    @staticmethod
    def as_json(response: HttpResponse) -> JsonResponse:
        json_response = JsonResponse({"error": response.reason_phrase.lower()}, status=response.status_code)
        for header in KEPT_HEADERS:
            if header in response:
                json_response[header] = response[header]
        return json_response

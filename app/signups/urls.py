import uuid

from django.urls import path, register_converter

from signups import views


class AnyCaseUUIDConverter:
    """A UUID in upper, lower or mixed case (Django's `uuid` converter takes lower case only)."""

    regex = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"

    def to_python(self, value: str) -> uuid.UUID:
        return uuid.UUID(value)

    def to_url(self, value: uuid.UUID) -> str:
        return str(value)


register_converter(AnyCaseUUIDConverter, "anycaseuuid")

urlpatterns = [
    path("signups", views.create_signup, name="signup-create"),
    path("signups/<anycaseuuid:signup_id>", views.signup_detail, name="signup-detail"),
]

"""URL routes: the signup API, readiness, and the admin."""

from django.contrib import admin
from django.urls import include, path

from core.views import readiness

urlpatterns = [
    path("api/", include("signups.urls")),
    path("readyz", readiness, name="readiness"),
    path("admin/", admin.site.urls),
]

"""URL routes: the signup API, readiness, files, and the admin."""

from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.urls import include, path

from core.views import readiness

urlpatterns = [
    path("api/", include("signups.urls")),
    path("readyz", readiness, name="readiness"),
    path("admin/", admin.site.urls),
    path("files/", include("attachments.urls")),
]
# Local runs keep media on disk and serve it here (DEBUG only; deployed stacks use S3 URLs).
urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)

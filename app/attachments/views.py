"""Downloads: a short-lived link to the file in the media storage, never the bytes through gunicorn."""

import uuid

from django.http import Http404, HttpRequest, HttpResponseRedirect
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from attachments.models import Attachment


@never_cache  # the link it redirects to expires
@require_GET
def download(request: HttpRequest, attachment_id: uuid.UUID) -> HttpResponseRedirect:
    attachment = Attachment.objects.filter(pk=attachment_id).first()
    if attachment is None or not attachment.file:
        raise Http404("no attachment with this id")
    # On S3 a presigned URL of the private bucket (MEDIA_URL_EXPIRE_SECONDS); locally MEDIA_URL.
    return HttpResponseRedirect(attachment.file.url)

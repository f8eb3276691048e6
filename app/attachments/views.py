"""Downloads: a short-lived link to the file in the media storage, never the bytes through gunicorn."""

import uuid

from django.http import Http404, HttpRequest, HttpResponseRedirect
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from storages.backends.s3 import S3Storage

from attachments.content import disposition, served_type
from attachments.models import Attachment


@never_cache  # the link it redirects to expires
@require_GET
def download(request: HttpRequest, attachment_id: uuid.UUID) -> HttpResponseRedirect:
    attachment = Attachment.objects.filter(pk=attachment_id).first()
    if attachment is None or not attachment.file:
        raise Http404("no attachment with this id")
    storage = attachment.file.storage
    if isinstance(storage, S3Storage):
        # A presigned URL of the private bucket (MEDIA_URL_EXPIRE_SECONDS). S3 answers with the type
        # and disposition signed into it, whatever the object's metadata says.
        url = storage.url(
            attachment.file.name,
            parameters={
                "ResponseContentType": served_type(attachment.content_type),
                "ResponseContentDisposition": disposition(attachment.content_type, str(attachment)),
            },
        )
    else:
        url = attachment.file.url  # MEDIA_URL, served by Django in local runs only
    response = HttpResponseRedirect(url)
    response["X-Content-Type-Options"] = "nosniff"
    return response

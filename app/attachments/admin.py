"""Staff upload attachments here; the change page links to the public download URL."""

import logging
from typing import Any

from botocore.exceptions import ConnectionError as S3ConnectionError
from botocore.exceptions import HTTPClientError
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html

from attachments.content import SNIFF_BYTES, detected_type
from attachments.models import Attachment

logger = logging.getLogger(__name__)
# The media store did not answer (connect or read timeout, connection closed): bounded by
# config.settings.media's client settings.
STORE_UNAVAILABLE = (S3ConnectionError, HTTPClientError)


class AttachmentForm(forms.ModelForm):
    class Meta:
        model = Attachment
        fields = ["file", "name"]

    def clean_file(self):
        upload = self.cleaned_data["file"]
        limit = settings.ATTACHMENT_MAX_BYTES
        if upload is not None and upload.size > limit:
            raise forms.ValidationError(f"The file is larger than {limit // (1024 * 1024)} MiB.")
        return upload


@admin.register(Attachment)
class AttachmentAdmin(admin.ModelAdmin):
    form = AttachmentForm
    list_display = ["__str__", "size", "content_type", "created_at", "download"]
    readonly_fields = ["size", "content_type", "created_at", "download"]

    def save_model(self, request, obj: Attachment, form, change: bool) -> None:
        upload = form.cleaned_data.get("file")
        if upload is not None and "file" in form.changed_data:
            upload.seek(0)
            # The type comes from the content, never from the uploader's claim; the storage writes
            # it as the object's Content-Type too.
            upload.content_type = detected_type(upload.read(SNIFF_BYTES))
            upload.seek(0)
            obj.size = upload.size
            obj.content_type = upload.content_type
            obj.name = obj.name or upload.name
        super().save_model(request, obj, form, change)

    def changeform_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        """An unanswering media store is a message on the form, not a 500 page (the row is rolled
        back with the rest of the admin's transaction)."""
        try:
            return super().changeform_view(request, *args, **kwargs)
        except STORE_UNAVAILABLE as error:
            logger.warning("attachment upload: the media store did not answer (%s)", type(error).__name__)
            self.message_user(
                request,
                "The file store did not answer in time; nothing was saved. Please try again shortly.",
                messages.ERROR,
            )
            response = HttpResponseRedirect(request.get_full_path())
            response["Retry-After"] = "30"
            return response

    @admin.display(description="link")
    def download(self, obj: Attachment) -> str:
        if obj.pk is None or not obj.file:
            return "-"
        url = reverse("attachment-download", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, url)

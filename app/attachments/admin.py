"""Staff upload attachments here; the change page links to the public download URL."""

from django import forms
from django.conf import settings
from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from attachments.models import Attachment


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
            obj.size = upload.size
            obj.content_type = getattr(upload, "content_type", "") or ""
            obj.name = obj.name or upload.name
        super().save_model(request, obj, form, change)

    @admin.display(description="link")
    def download(self, obj: Attachment) -> str:
        if obj.pk is None or not obj.file:
            return "-"
        url = reverse("attachment-download", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, url)

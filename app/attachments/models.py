"""Files that staff upload in the admin and anyone with the link downloads.

The file lives in the media storage (the stack's private S3 bucket); the row keeps what people see.
Each file gets a key of its own (`attachments/<id>/<name>`), so two uploads of one name never
collide and the key reveals nothing guessable.
"""

import uuid

from django.db import models
from django.utils.text import get_valid_filename


def attachment_key(instance: "Attachment", filename: str) -> str:
    return f"attachments/{instance.id}/{get_valid_filename(filename)}"


class Attachment(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    file = models.FileField(upload_to=attachment_key, max_length=300)
    name = models.CharField(
        max_length=255, blank=True, help_text="Shown to people; the file's name if empty."
    )
    content_type = models.CharField(max_length=100, blank=True, editable=False)
    size = models.PositiveBigIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name or self.file.name

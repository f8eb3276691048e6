from django.urls import path

from attachments import views

urlpatterns = [
    path("<uuid:attachment_id>", views.download, name="attachment-download"),
]

from django.contrib import admin

from signups.models import PeriodicRun, Signup


@admin.register(Signup)
class SignupAdmin(admin.ModelAdmin):
    list_display = ["id", "status", "attempts", "created_at", "next_attempt_at", "sent_at"]
    list_filter = ["status"]
    search_fields = ["email_canonical"]
    readonly_fields = [
        "id", "email_canonical", "attempts", "last_error", "created_at", "updated_at", "enqueued_at",
        "next_attempt_at", "sent_at",
    ]


@admin.register(PeriodicRun)
class PeriodicRunAdmin(admin.ModelAdmin):
    list_display = ["task_name", "scheduled_for", "firing", "worker", "ran_at"]
    list_filter = ["task_name", "firing"]

# Expand step of an expand/contract change: every column is nullable and the old unique constraint
# stays, so the previous release (which knows none of this) keeps working while this one rolls out.
# The contract step, in a later release: fill email_canonical of rows the previous release wrote
# during the rollout, make it NOT NULL, and drop signup_email_unique_ci.

from django.db import migrations, models

from signups.mailbox import InvalidMailbox, delivery_address, identity


def fill_email_canonical(apps, schema_editor) -> None:
    """Give each existing signup its mailbox identity; older spellings of one mailbox keep none.

    Earlier releases let some spellings of one mailbox in twice (IDN forms, Unicode case variants).
    Those signups exist and were emailed; the oldest one carries the identity, so new spellings
    find it, and the later ones stay as they are.
    """
    signup_model = apps.get_model("signups", "Signup")
    taken: set[str] = set()
    for signup in signup_model.objects.order_by("created_at").only("pk", "email").iterator():
        try:
            canonical = identity(delivery_address(signup.email))
        except InvalidMailbox:
            continue
        if canonical in taken:
            continue
        taken.add(canonical)
        signup_model.objects.filter(pk=signup.pk).update(email_canonical=canonical)


class Migration(migrations.Migration):
    dependencies = [
        ("signups", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="signup",
            name="email_canonical",
            field=models.CharField(blank=True, editable=False, max_length=320, null=True),
        ),
        migrations.AddField(
            model_name="signup",
            name="next_attempt_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="signup",
            name="retry_until",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(fill_email_canonical, migrations.RunPython.noop, elidable=True),
        migrations.AddIndex(
            model_name="signup",
            index=models.Index(fields=["status", "next_attempt_at"], name="signup_status_next_attempt"),
        ),
        migrations.AddConstraint(
            model_name="signup",
            constraint=models.UniqueConstraint(fields=("email_canonical",), name="signup_mailbox_unique"),
        ),
    ]

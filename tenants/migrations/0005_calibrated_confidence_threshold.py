"""confidence_threshold is now a minimum calibrated confidence (wafaa.ai.confidence), 0..1.

Clients still on the old default (0.3, a minimum similarity) move to the calibrated default.
"""

from django.db import migrations, models


def forwards(apps, schema_editor):
    Client = apps.get_model("tenants", "Client")
    Client.objects.filter(confidence_threshold=0.3).update(confidence_threshold=0.7)


class Migration(migrations.Migration):
    dependencies = [("tenants", "0004_signups_and_invitations")]

    operations = [
        migrations.AlterField(
            model_name="client",
            name="confidence_threshold",
            field=models.FloatField(
                default=0.7,
                help_text="Minimum calibrated confidence (0..1) to answer from the knowledge.",
            ),
        ),
        migrations.RunPython(forwards, migrations.RunPython.noop),
    ]

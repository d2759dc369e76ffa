"""The confidence model was refitted (issue 15: question similarity, query variants): its
default threshold is 0.6. Clients still on the previous default (0.7) move to it."""

from django.db import migrations, models


def forwards(apps, schema_editor):
    Client = apps.get_model("tenants", "Client")
    Client.objects.filter(confidence_threshold=0.7).update(confidence_threshold=0.6)


def backwards(apps, schema_editor):
    Client = apps.get_model("tenants", "Client")
    Client.objects.filter(confidence_threshold=0.6).update(confidence_threshold=0.7)


class Migration(migrations.Migration):
    dependencies = [("tenants", "0007_client_llm_concurrency")]

    operations = [
        migrations.AlterField(
            model_name="client",
            name="confidence_threshold",
            field=models.FloatField(
                default=0.6,
                help_text="Minimum calibrated confidence (0..1) to answer from the knowledge.",
            ),
        ),
        migrations.RunPython(forwards, backwards),
    ]

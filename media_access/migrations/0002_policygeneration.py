import secrets

from django.db import migrations, models


def create_row(apps, schema_editor):
    PolicyGeneration = apps.get_model("media_access", "PolicyGeneration")
    PolicyGeneration.objects.using(schema_editor.connection.alias).update_or_create(
        pk=1, defaults={"value": secrets.randbits(62)}
    )


class Migration(migrations.Migration):

    dependencies = [
        ("media_access", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="PolicyGeneration",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("value", models.BigIntegerField()),
            ],
            options={"verbose_name": "policy generation"},
        ),
        # The triggers that change it are (re)installed after every migrate
        # (decisions.install_triggers), because rebuilding a table on SQLite drops them.
        migrations.RunPython(create_row, migrations.RunPython.noop),
    ]

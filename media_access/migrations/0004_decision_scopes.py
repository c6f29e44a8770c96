# Remembered media decisions rest on scoped values (one row per page, user,
# session, video, plus "schema") instead of one generation row: see
# media_access/decisions.py. The triggers themselves are (re)installed after
# every migrate (decisions.install_triggers, post_migrate).

from django.db import migrations, models

TRIGGER_PREFIX = "private_video_access_policy_"


def drop_generation_triggers(apps, schema_editor):
    """The old triggers write the generation row this migration removes: drop
    them first, or every write to a watched table fails until post_migrate."""
    connection = schema_editor.connection
    qn = connection.ops.quote_name
    pattern = TRIGGER_PREFIX.replace("_", "\\_") + "%"
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE %s ESCAPE '\\'", [pattern]
            )
            for (name,) in cursor.fetchall():
                cursor.execute(f"DROP TRIGGER IF EXISTS {qn(name)}")
        elif connection.vendor == "postgresql":
            cursor.execute(
                "SELECT t.tgname, c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                "WHERE t.tgname LIKE %s AND NOT t.tgisinternal",
                [pattern],
            )
            for name, table in cursor.fetchall():
                cursor.execute(f"DROP TRIGGER IF EXISTS {qn(name)} ON {qn(table)}")
            cursor.execute("DROP FUNCTION IF EXISTS private_video_access_policy_bump()")


class Migration(migrations.Migration):

    dependencies = [
        ("private_video_access", "0003_watch_analytics"),
    ]

    operations = [
        migrations.RunPython(drop_generation_triggers, migrations.RunPython.noop),
        migrations.DeleteModel(name="PolicyGeneration"),
        migrations.CreateModel(
            name="DecisionScope",
            fields=[
                ("key", models.CharField(max_length=255, primary_key=True, serialize=False, verbose_name="key")),
                ("value", models.BigIntegerField(verbose_name="value")),
                ("touched", models.BigIntegerField(db_index=True, verbose_name="touched")),
            ],
            options={
                "verbose_name": "decision scope",
            },
        ),
    ]

# Watch analytics (issue 14): one row per viewing with the seconds played.

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

from private_video import get_video_model_string


class Migration(migrations.Migration):

    dependencies = [
        migrations.swappable_dependency(get_video_model_string()),
        ('private_video_access', '0002_playback_position'),
        migrations.swappable_dependency(settings.WAGTAIL_PAGE_MODEL),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='Viewing',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('viewer', models.CharField(max_length=64, verbose_name='viewer')),
                ('session', models.CharField(max_length=64, verbose_name='playback session')),
                ('seconds', models.BinaryField(default=bytes, verbose_name='seconds watched (bitmap)')),
                ('watched', models.PositiveIntegerField(default=0, verbose_name='seconds watched')),
                ('duration', models.FloatField(verbose_name='duration (seconds)')),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now, verbose_name='created at')),
                ('updated_at', models.DateTimeField(db_index=True, default=django.utils.timezone.now, verbose_name='updated at')),
                ('page', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.WAGTAIL_PAGE_MODEL, verbose_name='page')),
                ('user', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to=settings.AUTH_USER_MODEL, verbose_name='user')),
                # The site's video model (PRIVATE_VIDEO_MODEL), as in 0001.
                ('video', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to=get_video_model_string(), verbose_name='video')),
            ],
            options={
                'verbose_name': 'viewing',
                'verbose_name_plural': 'viewings',
                'constraints': [models.UniqueConstraint(fields=('video', 'page', 'viewer', 'session'), name='private_video_access_viewing_unique')],
            },
        ),
    ]

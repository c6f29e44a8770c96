# Resumable uploads (issue 13). Written by hand from makemigrations' output:
# the video foreign key follows PRIVATE_VIDEO_MODEL, as 0003_captions_chapters_poster does.

import uuid

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from private_video import get_video_model_string


class Migration(migrations.Migration):

    dependencies = [
        ('private_video', '0003_captions_chapters_poster'),
        ('wagtailcore', '0098_apitoken'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        migrations.swappable_dependency(get_video_model_string()),
    ]

    operations = [
        migrations.CreateModel(
            name='Upload',
            fields=[
                ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ('title', models.CharField(blank=True, max_length=255, verbose_name='title')),
                ('filename', models.CharField(max_length=255, verbose_name='file name')),
                ('length', models.PositiveBigIntegerField(verbose_name='size')),
                ('offset', models.PositiveBigIntegerField(default=0, verbose_name='bytes received')),
                ('backend', models.CharField(choices=[('tus', 'tus'), ('s3', 's3')], max_length=8, verbose_name='backend')),
                ('video_key', models.UUIDField(default=uuid.uuid4, editable=False)),
                ('s3_key', models.CharField(blank=True, max_length=255)),
                ('s3_upload_id', models.CharField(blank=True, max_length=255)),
                ('state', models.CharField(choices=[('receiving', 'receiving'), ('processing', 'processing'), ('complete', 'complete'), ('failed', 'failed'), ('cancelled', 'cancelled')], default='receiving', max_length=16, verbose_name='state')),
                ('error', models.TextField(blank=True, verbose_name='error')),
                ('created_at', models.DateTimeField(auto_now_add=True, verbose_name='started at')),
                ('updated_at', models.DateTimeField(auto_now=True, verbose_name='updated at')),
                ('expires_at', models.DateTimeField(verbose_name='expires at')),
                ('collection', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='wagtailcore.collection', verbose_name='collection')),
                ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to=settings.AUTH_USER_MODEL, verbose_name='user')),
                ('video', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=get_video_model_string())),
            ],
            options={
                'verbose_name': 'upload',
                'verbose_name_plural': 'uploads',
                'ordering': ['-created_at'],
                'indexes': [models.Index(fields=['state', 'expires_at'], name='private_vid_upload_expiry')],
            },
        ),
    ]

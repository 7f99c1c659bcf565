"""SecurityEvent, Alert, TokenUsageDay, TokenPermissionUsage and the SecurityDashboard proxy move
from tokens to monitoring in Django's state only: their tables keep their names (tokens_*) and
rows. Their content types move with them, so the permissions granted on them (to groups and
staff users) are kept: tokens.view_securityevent becomes monitoring.view_securityevent.
"""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

MOVED_MODELS = ("securityevent", "securitydashboard", "alert", "tokenusageday", "tokenpermissionusage")


def move_content_types(apps, schema_editor, source="tokens", target="monitoring"):
    """Give the moved models' content types their new app label. Idempotent; where both exist
    (post_migrate ran in between), the grants of the old permissions go to the new ones."""
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    LogEntry = apps.get_model("admin", "LogEntry")
    db = schema_editor.connection.alias
    for model in MOVED_MODELS:
        old = ContentType.objects.using(db).filter(app_label=source, model=model).first()
        if old is None:
            continue
        new = ContentType.objects.using(db).filter(app_label=target, model=model).first()
        if new is None:
            old.app_label = target
            old.save(update_fields=["app_label"])
            continue
        for permission in Permission.objects.using(db).filter(content_type=old):
            twin = Permission.objects.using(db).filter(content_type=new, codename=permission.codename).first()
            if twin is None:
                permission.content_type = new
                permission.save(update_fields=["content_type"])
                continue
            for group in permission.group_set.all():
                group.permissions.add(twin)
            for user in permission.user_set.all():
                user.user_permissions.add(twin)
            permission.delete()
        LogEntry.objects.using(db).filter(content_type=old).update(content_type=new)
        old.delete()
    ContentType.objects.clear_cache()


def move_content_types_back(apps, schema_editor):
    move_content_types(apps, schema_editor, source="monitoring", target="tokens")


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('tokens', '0006_activation_and_reuse_kinds'),
        ('contenttypes', '0002_remove_content_type_name'),
        ('auth', '0012_alter_user_first_name_max_length'),
        ('admin', '0003_logentry_add_action_flag_choices'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='SecurityEvent',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('kind', models.CharField(choices=[('token_exchanged', 'Token exchanged'), ('exchange_failed', 'Token exchange failed'), ('token_pair_refreshed', 'Access token renewed'), ('authentication_failed', 'Authentication failed'), ('permission_denied', 'Permission denied'), ('user_token_created', 'User Token created'), ('user_token_refreshed', 'User Token refreshed'), ('user_token_deactivated', 'User Token deactivated'), ('user_token_activated', 'User Token activated again'), ('user_token_expired', 'User Token expired'), ('permissions_changed', 'Permissions changed'), ('rate_limit_hit', 'Rate limit hit'), ('licence_refused', 'Refused: platform licence expired'), ('activation_refused', 'Machine activation refused')], max_length=32)),
                        ('created_at', models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                        ('reason', models.CharField(blank=True, max_length=64)),
                        ('address', models.GenericIPAddressField(blank=True, null=True)),
                        ('user_agent', models.CharField(blank=True, max_length=300)),
                        ('token_hint', models.CharField(blank=True, help_text='Last four characters of the token, when known.', max_length=4)),
                        ('via', models.CharField(blank=True, help_text='admin, api, command, ...', max_length=20)),
                        ('method', models.CharField(blank=True, max_length=10)),
                        ('path', models.CharField(blank=True, max_length=300)),
                        ('count', models.PositiveIntegerField(default=1)),
                        ('details', models.JSONField(blank=True, default=dict)),
                        ('request_id', models.UUIDField(blank=True, editable=False, null=True, unique=True)),
                        ('actor', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('user_token', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='tokens.usertoken')),
                    ],
                    options={
                        'verbose_name': 'security event',
                        'db_table': 'tokens_securityevent',
                        'ordering': ['-created_at', '-id'],
                    },
                ),
                migrations.CreateModel(
                    name='SecurityDashboard',
                    fields=[
                    ],
                    options={
                        'verbose_name': 'security dashboard',
                        'verbose_name_plural': 'security dashboard',
                        'proxy': True,
                        'indexes': [],
                        'constraints': [],
                    },
                    bases=('monitoring.securityevent',),
                ),
                migrations.CreateModel(
                    name='TokenPermissionUsage',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('permission', models.CharField(choices=[('view_users', 'View Users'), ('create_users', 'Create Users'), ('edit_users', 'Edit Users'), ('delete_users', 'Delete Users'), ('edit_user_tokens', 'Edit User Tokens'), ('view_products', 'View Products'), ('edit_products', 'Edit Products'), ('view_licenses', 'View Licenses'), ('edit_licenses', 'Edit Licenses'), ('view_customers', 'View Customers'), ('create_groups', 'Create Groups'), ('edit_groups', 'Edit Groups'), ('delete_groups', 'Delete Groups'), ('view_webhooks', 'View Webhooks'), ('edit_webhooks', 'Edit Webhooks')], max_length=40)),
                        ('last_used_at', models.DateTimeField()),
                        ('user_token', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='permission_usage', to='tokens.usertoken')),
                    ],
                    options={
                        'db_table': 'tokens_tokenpermissionusage',
                        'ordering': ['permission'],
                    },
                ),
                migrations.CreateModel(
                    name='TokenUsageDay',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('day', models.DateField()),
                        ('requests', models.PositiveBigIntegerField(default=0)),
                        ('user_token', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='usage_days', to='tokens.usertoken')),
                    ],
                    options={
                        'db_table': 'tokens_tokenusageday',
                        'ordering': ['-day'],
                    },
                ),
                migrations.CreateModel(
                    name='Alert',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('kind', models.CharField(choices=[('failed_authentication', 'Repeated failed authentication'), ('permission_denied', 'Repeated permission denials'), ('webhook_disabled', 'Webhook endpoint disabled'), ('refresh_token_reused', 'Spent refresh token presented again')], max_length=32)),
                        ('status', models.CharField(choices=[('open', 'Open'), ('acknowledged', 'Acknowledged')], default='open', max_length=16)),
                        ('created_at', models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                        ('address', models.GenericIPAddressField(blank=True, null=True)),
                        ('count', models.PositiveIntegerField()),
                        ('window_seconds', models.PositiveIntegerField()),
                        ('message', models.CharField(max_length=300)),
                        ('acknowledged_at', models.DateTimeField(blank=True, null=True)),
                        ('acknowledged_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('user_token', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='tokens.usertoken')),
                    ],
                    options={
                        'db_table': 'tokens_alert',
                        'ordering': ['-created_at', '-id'],
                        'indexes': [models.Index(fields=['status', 'created_at'], name='tokens_alert_status_time')],
                    },
                ),
                migrations.AddIndex(
                    model_name='securityevent',
                    index=models.Index(fields=['kind', 'created_at'], name='tokens_event_kind_time'),
                ),
                migrations.AddConstraint(
                    model_name='tokenpermissionusage',
                    constraint=models.UniqueConstraint(fields=('user_token', 'permission'), name='tokens_permission_usage_unique'),
                ),
                migrations.AddIndex(
                    model_name='tokenusageday',
                    index=models.Index(fields=['day'], name='tokens_usage_day'),
                ),
                migrations.AddConstraint(
                    model_name='tokenusageday',
                    constraint=models.UniqueConstraint(fields=('user_token', 'day'), name='tokens_usage_token_day'),
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(move_content_types, move_content_types_back),
    ]

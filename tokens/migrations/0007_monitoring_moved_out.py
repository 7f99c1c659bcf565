"""The monitoring models now belong to the monitoring app (its 0001): gone from tokens' state only,
their tables stay."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('tokens', '0006_activation_and_reuse_kinds'),
        ('monitoring', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveField(
                    model_name='alert',
                    name='acknowledged_by',
                ),
                migrations.RemoveField(
                    model_name='alert',
                    name='user_token',
                ),
                migrations.RemoveField(
                    model_name='securityevent',
                    name='actor',
                ),
                migrations.RemoveField(
                    model_name='securityevent',
                    name='user_token',
                ),
                migrations.RemoveField(
                    model_name='tokenpermissionusage',
                    name='user_token',
                ),
                migrations.RemoveField(
                    model_name='tokenusageday',
                    name='user_token',
                ),
                migrations.DeleteModel(
                    name='SecurityDashboard',
                ),
                migrations.DeleteModel(
                    name='Alert',
                ),
                migrations.DeleteModel(
                    name='SecurityEvent',
                ),
                migrations.DeleteModel(
                    name='TokenPermissionUsage',
                ),
                migrations.DeleteModel(
                    name='TokenUsageDay',
                ),
            ],
            database_operations=[],
        ),
    ]

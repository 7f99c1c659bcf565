from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "monitoring"

    def ready(self):
        # Security-event and usage receivers; the admin pages are found by admin autodiscovery.
        from monitoring import events

        events.connect()

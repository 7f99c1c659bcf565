from django.apps import AppConfig


class TokensConfig(AppConfig):
    name = "tokens"

    def ready(self):
        # Monitoring: security-event and usage receivers, log redaction, its admin pages.
        from tokens import admin_monitoring, monitoring, services  # noqa: F401
        from tokens import logging as token_logging

        token_logging.install()
        monitoring.connect()
        # Permission changes of a User Token, signalled once whatever saved it.
        services.connect()

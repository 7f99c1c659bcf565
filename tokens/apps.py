from django.apps import AppConfig


class TokensConfig(AppConfig):
    name = "tokens"

    def ready(self):
        from tokens import logging as token_logging
        from tokens import services

        token_logging.install()
        # Permission changes of a User Token, signalled once whatever saved it.
        services.connect()

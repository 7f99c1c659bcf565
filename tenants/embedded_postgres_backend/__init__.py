"""The embedded development database's backend (config.embedded_postgres starts the server)."""

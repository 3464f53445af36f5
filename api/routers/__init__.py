"""One router per domain; ``api.app`` includes every router listed in ``ROUTERS``."""

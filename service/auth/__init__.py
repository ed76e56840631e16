"""Authentication (bearer tokens, keys) and authorization (principals, roles)."""

"""The sandbox: a demonstration federation on a running development service.

Two halves. The service side (`federation`, `router`) finds or creates the demo
organizations and their task force on the service's own database and issues
development tokens through a development-only endpoint. The command side
(`remote`, `local_keys`, `setup`, `story`) is what `accord demo` runs: it talks to the
service over HTTP only, like any case-management tool (docs/configuration.md
"The sandbox").
"""

# Accord service image (docs/deployment.md): built in one stage, run in another as a
# non-root user, its keys and any SQLite file in the volume /var/lib/accord.
#
#   docker build -t accord .
#   docker run --rm -p 8000:8000 -v accord-data:/var/lib/accord \
#     -e ACCORD_JWT_ISSUER=... -e ACCORD_JWT_JWKS_URL=https://... accord
#
# compose.yaml runs it with PostgreSQL and Redis.

# --- build: a virtual environment with the service, its client library and Redis support
FROM python:3.11-slim AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY clients ./clients
COPY service ./service
COPY migrations ./migrations
COPY policies ./policies
# Editable installs: the service finds migrations/ and policies/ beside service/
# (service/settings.py REPO_ROOT), so the tree stays at /app in the final stage too.
RUN python -m venv /opt/accord \
    && /opt/accord/bin/pip install --no-cache-dir -e ./clients -e '.[redis]' \
    && /opt/accord/bin/python -m compileall -q service clients/accord_client

# --- run
FROM python:3.11-slim

ENV PATH=/opt/accord/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    ACCORD_ENVIRONMENT=production \
    ACCORD_AUTO_MIGRATE=false \
    ACCORD_KEY_DIR=/var/lib/accord/keys \
    ACCORD_DATABASE_URL=sqlite+aiosqlite:////var/lib/accord/data/accord.db \
    CREATE_KEYS=true

RUN groupadd --system --gid 10001 accord \
    && useradd --system --uid 10001 --gid accord --home-dir /var/lib/accord --no-create-home accord \
    && mkdir -p /var/lib/accord/keys /var/lib/accord/data \
    && chown -R 10001:10001 /var/lib/accord \
    && chmod 700 /var/lib/accord/keys /var/lib/accord/data

COPY --from=build /opt/accord /opt/accord
COPY --from=build /app /app
WORKDIR /app

# The keys (ACCORD_KEY_DIR) and, with SQLite, the database. Mount the same keys on
# every node; back them up apart from the database (docs/deployment.md "Keys").
VOLUME ["/var/lib/accord"]
USER 10001:10001
EXPOSE 8000

# Ready: the database answers and the identity provider's keys are known.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request as u; sys.exit(0 if u.urlopen('http://127.0.0.1:8000/readyz', timeout=2).status == 200 else 1)"]

# Missing keys are created at the first start (CREATE_KEYS=true, one node only);
# with CREATE_KEYS=false every key must be there (mounted) or the service refuses to
# start. Migrations are a release step: `accord db upgrade` (compose.yaml `release`).
CMD ["sh", "-c", "if [ \"$CREATE_KEYS\" = true ]; then accord keys init; fi && exec accord serve --host 0.0.0.0 --port 8000"]

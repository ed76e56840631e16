# Accord service image: slim base, non-root user, migrations then uvicorn.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    ACCORD_ENVIRONMENT=production ACCORD_AUTO_MIGRATE=false \
    ACCORD_KEY_DIR=/var/lib/accord/keys

RUN groupadd --system accord && useradd --system --gid accord --home /app accord \
    && mkdir -p /var/lib/accord/keys && chown -R accord:accord /var/lib/accord && chmod 700 /var/lib/accord/keys

WORKDIR /app
COPY pyproject.toml README.md ./
COPY service ./service
COPY clients ./clients
COPY migrations ./migrations
COPY policies ./policies
RUN pip install --no-cache-dir -e . && chown -R root:root /app

USER accord
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"

# Migrations run once per start; with several app nodes run `accord db upgrade` as a
# separate release step instead and keep ACCORD_AUTO_MIGRATE=false.
CMD ["sh", "-c", "accord db upgrade && exec accord serve --host 0.0.0.0 --port 8000"]

# syntax=docker/dockerfile:1
# One image for every woosync process: the command picks the part, e.g.
#   docker run IMAGE run consumer      docker run IMAGE migrate      docker run IMAGE simulator --port 8090

# --- build: install the project and its dependencies into a virtual environment -----------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/woosync
ENV PATH=/opt/woosync/bin:$PATH
WORKDIR /src
# pyproject first: its layer (and the dependency download) is reused until the project metadata changes.
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
COPY woosync ./woosync
# A regular (not editable) install: the runtime stage copies only the virtual environment.
RUN pip install . && pip check

# --- runtime: the virtual environment, the migrations and an unprivileged user ------------------
FROM python:3.11-slim AS runtime
LABEL org.opencontainers.image.title="woosync" \
      org.opencontainers.image.description="WooCommerce customers into Postgres over RabbitMQ: producer, consumers, status API"
RUN groupadd --system --gid 10001 woosync \
 && useradd --system --uid 10001 --gid woosync --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin woosync
COPY --from=build /opt/woosync /opt/woosync
# `pip install .` does not ship sql/ (not a package): `woosync migrate` reads it from WOOSYNC_SQL_DIR.
COPY sql /app/sql
COPY deploy/docker/healthcheck.py /app/healthcheck.py
ENV PATH=/opt/woosync/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    WOOSYNC_SQL_DIR=/app/sql \
    WOOSYNC_LOG_FORMAT=json
WORKDIR /app
# Numeric user so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
# status 8080, simulator 8090, producer 9101 and consumer 9102 (/metrics, /healthz, /readyz).
EXPOSE 8080 8090 9101 9102
# The probe finds which woosync command this container runs and asks that command's own
# endpoint (see deploy/docker/healthcheck.py); one-shot commands such as migrate count as healthy.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/app/healthcheck.py"]
ENTRYPOINT ["woosync"]
CMD ["--help"]

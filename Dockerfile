# syntax=docker/dockerfile:1
#
# The Hedge gateway. Build from the repository root:
#   docker build -t hedge-gateway .
# Run it with a config mounted at /etc/hedge/hedge.yaml; secrets stay out of the file and come from
# the environment through its ${VAR} interpolation (e.g. master_key: ${HEDGE_MASTER_KEY}):
#   docker run --rm -p 8080:8080 -v "$PWD/hedge.yaml:/etc/hedge/hedge.yaml:ro" \
#     -e HEDGE_MASTER_KEY=... -e OPENAI_API_KEY=... hedge-gateway
# Arguments after the image name go to `hedge serve`: `--workers 4 --log-format json`.
# The config's server.port must stay 8080 (EXPOSE and HEALTHCHECK below), or override both.
# deploy/compose.yaml runs two replicas of this image with PostgreSQL, Redis, Prometheus and Grafana.

ARG PYTHON_VERSION=3.12

# Build stage: install Hedge and its runtime dependencies (no dev extras) into a virtualenv.
FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/hedge
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/hedge/bin/pip install .

# Runtime stage: the virtualenv only, run by an unprivileged user.
FROM python:${PYTHON_VERSION}-slim
ENV PATH=/opt/hedge/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN groupadd --system --gid 10001 hedge \
 && useradd --system --uid 10001 --gid hedge --home-dir /var/lib/hedge --no-create-home \
      --shell /usr/sbin/nologin hedge \
 && install -d -o hedge -g hedge -m 0750 /var/lib/hedge \
 && install -d -m 0755 /etc/hedge
COPY --from=build /opt/hedge /opt/hedge
# state.dir: the spool of records the database could not take, an installed price catalogue.
WORKDIR /var/lib/hedge
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=4).status != 200)"]
ENTRYPOINT ["hedge", "serve", "--config", "/etc/hedge/hedge.yaml", "--host", "0.0.0.0"]

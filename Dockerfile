# The control plane's image: web (uvicorn), the Celery worker and beat, and the one-shot `migrate` job all
# run it (docker-compose.yml; README, "Production"). Production builds FROM the official Python image; CI
# builds FROM a local Debian base with Python 3.11 (scripts/smoke_image.sh), hence the argument.
ARG BASE_IMAGE=python:3.11-slim-bookworm

# --- Build: the production requirements (never requirements-dev.txt) in a virtualenv ------------
FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install --upgrade pip && /opt/venv/bin/pip install -r /tmp/requirements.txt

# --- Runtime: the virtualenv, the code (root-owned, read-only to the app) and the collected static files ---
FROM ${BASE_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    INVENTIV_VAR_DIR=/app/var \
    INVENTIV_STATIC_ROOT=/app/staticfiles \
    UVICORN_HOST=0.0.0.0 \
    UVICORN_PORT=8000 \
    UVICORN_HTTP=inventiv.asgi:HttpProtocol
RUN groupadd --system --gid 10001 inventiv \
    && useradd --system --uid 10001 --gid inventiv --home-dir /app --no-create-home --shell /usr/sbin/nologin inventiv
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY . /app
# Settings need a SECRET_KEY and a var folder to start; neither may stay in the image.
RUN SECRET_KEY=collectstatic-at-build-time-only-never-used-to-sign INVENTIV_VAR_DIR=/tmp/build-var \
        python manage.py collectstatic --noinput --verbosity 0 \
    && rm -rf /tmp/build-var \
    && mkdir -p /app/var && chown inventiv:inventiv /app/var
USER inventiv
VOLUME ["/app/var"]
EXPOSE 8000
# A request with a Host that ALLOWED_HOSTS accepts, whatever it says (scripts/healthcheck.py).
HEALTHCHECK --interval=15s --timeout=10s --start-period=60s --retries=3 CMD ["python", "scripts/healthcheck.py"]
CMD ["uvicorn", "inventiv.asgi:application"]

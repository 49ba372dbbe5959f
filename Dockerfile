# The Pulse app image: the Streamlit app by default, and the same image runs any `python -m
# services.cli` command (the intake watcher, bootstrap, serve) as its command. Settings come from the
# environment (PULSE_*, AWS_*); nothing secret is baked in (.dockerignore keeps .streamlit/secrets.toml,
# workspaces and caches out). One server with compose: compose.yaml and docs/deploy.md.
#
#   docker build -t pulse .
#   docker run -p 8501:8501 -e PULSE_AUTH_MODE=password -v pulse-data:/data pulse
#   docker run -v pulse-data:/data pulse python -m services.cli bootstrap
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PULSE_WORKSPACE=/data/workspace \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false

WORKDIR /opt/pulse
COPY requirements.txt .
RUN pip install --no-compile -r requirements.txt
COPY app.py ./
COPY .streamlit/config.toml .streamlit/
COPY dashboard/ dashboard/
COPY pages/ pages/
COPY services/ services/

# A user of its own, without a login or a home in the image; the workspace volume is its only write.
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin pulse \
    && mkdir -p /data/workspace && chown -R pulse /data
USER 10001
VOLUME /data
EXPOSE 8501

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request, sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4).read().strip() == b'ok' else 1)"]

CMD ["streamlit", "run", "app.py", "--server.port=8501", "--server.address=0.0.0.0", "--server.headless=true"]

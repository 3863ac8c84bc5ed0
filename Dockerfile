# edgecache in a container: `edgecache serve` configured from a mounted file or the environment.
#
#   docker build -t edgecache .
#   docker run -p 8080:8080 -p 127.0.0.1:8081:8081 -e EDGECACHE_ORIGIN_URL=http://origin:9000 edgecache
#
# Settings are read from /etc/edgecache/edgecache.toml (the documented default; mount your own
# file over it), then from EDGECACHE_<SECTION>_<KEY> variables, then from flags appended to the
# command, for example `--listen 0.0.0.0:8080 --admin-listen 0.0.0.0:8081`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

COPY . /src
RUN pip install /src \
    && mkdir -p /etc/edgecache \
    && cp /src/config/edgecache.toml /etc/edgecache/edgecache.toml \
    && rm -rf /src \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin edgecache

# Both listeners bind to every interface inside the container. The admin listener serves
# /stats, /metrics and /purge: publish it only on a private network, and set
# EDGECACHE_ADMIN_TOKEN to enable purges.
ENV EDGECACHE_SERVER_LISTEN=0.0.0.0:8080 \
    EDGECACHE_SERVER_ADMIN_LISTEN=0.0.0.0:8081

USER edgecache
WORKDIR /tmp
EXPOSE 8080 8081

# Probes the admin listener at the port EDGECACHE_SERVER_ADMIN_LISTEN names.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('EDGECACHE_SERVER_ADMIN_LISTEN', ':8081').rpartition(':')[2]; urllib.request.urlopen(f'http://127.0.0.1:{port}/health', timeout=2)"]

ENTRYPOINT ["edgecache", "serve", "--config", "/etc/edgecache/edgecache.toml"]

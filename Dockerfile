# The cdcsync image used by docker-compose.yml: one image, the command picks
# the role (daemon, worker, review, run, setup, ...).
FROM python:3.11-slim

# MALLOC_ARENA_MAX=2: glibc's per-thread arenas grow a daemon's resident memory
# (partition consumers are threads); docs/daemon.md measured 411 -> 386 MiB peak with
# a 5M-change backlog.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MALLOC_ARENA_MAX=2

WORKDIR /src
COPY pyproject.toml README.md ./
COPY config ./config
COPY conflict ./conflict
COPY connectors ./connectors
COPY sync ./sync
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /home/cdcsync --create-home cdcsync

USER cdcsync
WORKDIR /home/cdcsync
ENTRYPOINT ["cdcsync"]
CMD ["--help"]

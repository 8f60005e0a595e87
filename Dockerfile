# Slim image of the Zendo service: HTTP + WebSocket on port 8080.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update && apt-get install -y --no-install-recommends gcc g++ \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY core ./core
COPY dispatch ./dispatch
COPY matching ./matching
COPY gateway ./gateway
COPY zendo ./zendo
RUN python -m venv /opt/venv && /opt/venv/bin/pip install .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 zendo
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY sql ./sql
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    ZENDO_HOST=0.0.0.0 \
    ZENDO_PORT=8080 \
    ZENDO_STATE_DIR=/app/.zendo \
    NUMBA_CACHE_DIR=/tmp/numba
RUN mkdir -p /app/.zendo && chown zendo /app/.zendo
USER zendo
# The matching kernels, compiled into the image's numba cache: `zendo serve` then loads
# them in ~2 s (numba compiles again, once, on a host whose CPU differs from the build's).
RUN zendo warmup
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8080/healthz'); sys.exit(0)"
CMD ["sh", "-c", "zendo migrate && exec zendo serve"]

# Paymux gateway image: slim, non-root, runs `paymux serve`.
# Dependencies come from requirements.lock (exact versions and hashes, `make lock`);
# pyproject.toml keeps the compatible ranges.
FROM python:3.11-slim AS build
WORKDIR /src
COPY requirements.lock ./
RUN pip install --no-cache-dir --prefix=/install --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY src ./src
COPY adapters ./adapters
# The sandboxes (simulated Alipay/WeChat gateways, their key generation and shared book)
# are for `make run` and the tests, never for production: they are left out of the image.
# tests/unit/test_production_image.py keeps this list equal to what only they import.
RUN rm adapters/*/sandbox*.py adapters/*/devkit.py adapters/*/keys.py \
       src/paymux/channels/sandbox_*.py
RUN pip install --no-cache-dir --prefix=/install --no-deps .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /app paymux
WORKDIR /app
COPY --from=build /install /usr/local
COPY config ./config
USER paymux
ENV PAYMUX_HOST=0.0.0.0 \
    PAYMUX_PORT=8000 \
    PAYMUX_DATA_DIR=/app/var \
    PAYMUX_LOG_FORMAT=json \
    PYTHONUNBUFFERED=1
EXPOSE 8000
# Production expects PAYMUX_DATABASE_URL (PostgreSQL), PAYMUX_REDIS_URL and PAYMUX_ADMIN_KEY.
CMD ["paymux", "serve"]

# Paymux gateway image: slim, non-root, runs `paymux serve`.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
COPY adapters ./adapters
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /app paymux
WORKDIR /app
COPY --from=build /install /usr/local
COPY config ./config
USER paymux
ENV PAYMUX_HOST=0.0.0.0 \
    PAYMUX_PORT=8000 \
    PAYMUX_DATA_DIR=/app/var \
    PYTHONUNBUFFERED=1
EXPOSE 8000
# Production expects PAYMUX_DATABASE_URL (PostgreSQL), PAYMUX_REDIS_URL and PAYMUX_ADMIN_KEY.
CMD ["paymux", "serve"]

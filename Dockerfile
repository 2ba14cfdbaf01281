# One image for every service; docker-compose.yml picks the console script to run.
FROM python:3.12-slim

WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY gen gen
# The production layers only: the development stack (devstack/, embedded servers) stays out.
COPY core core
COPY transports transports
COPY runtime runtime
COPY ingest_server ingest_server
COPY report_server report_server
COPY writer writer
RUN pip install --no-cache-dir -c constraints.txt .

USER nobody

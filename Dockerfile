# syntax=docker/dockerfile:1
# The Jobs service image: one image, every role. The argument picks the role:
#   docker run IMAGE all | api | relay | worker | migrate | env create SLUG | projections rebuild
# It needs DATABASE_URL, KAFKA_BOOTSTRAP_SERVERS and (for the roles) JOBS_SECRET_KEY (see app/settings.py);
# compose.yaml sets them.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    JOBS_HOST=0.0.0.0 \
    JOBS_PORT=8000

# A non-root user to run as.
RUN groupadd --gid 10001 jobs \
    && useradd --uid 10001 --gid jobs --create-home --home-dir /home/jobs --shell /usr/sbin/nologin jobs

WORKDIR /src

# Dependencies first, in their own layer, so a code change does not reinstall them: the pinned, hashed lock of
# what the roles need (`make lock`; no embedded services: compose runs PostgreSQL and Kafka).
COPY requirements/base.lock requirements/
RUN pip install --no-cache-dir -r requirements/base.lock

COPY pyproject.toml ./
COPY app/ app/
COPY domain/ domain/
COPY projections/ projections/
COPY relay/ relay/
COPY migrations/ migrations/
RUN pip install --no-cache-dir --no-deps . \
    && cd / && rm -rf /src

WORKDIR /home/jobs
USER 10001:10001

EXPOSE 8000 9464

ENTRYPOINT ["jobs-service"]
CMD ["all"]

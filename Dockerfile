# smsbot production image: gunicorn web workers; run `smsbot worker` from the same image
# for check-ins, and `smsbot db upgrade` once per release.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    SMSBOT_BIND=0.0.0.0:8000 PROMETHEUS_MULTIPROC_DIR=/tmp/smsbot-metrics
WORKDIR /app
COPY pyproject.toml README.md ./
COPY smsbot ./smsbot
COPY rules ./rules
RUN pip install --no-cache-dir '.[prod]' && useradd --system smsbot \
    && mkdir -p /tmp/smsbot-metrics && chown smsbot /tmp/smsbot-metrics
USER smsbot
EXPOSE 8000
CMD ["gunicorn", "-c", "python:smsbot.web.gunicorn_conf", "smsbot:create_app()"]

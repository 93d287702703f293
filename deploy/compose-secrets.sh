#!/usr/bin/env bash
# Prints a .env for docker-compose.yml: administrator passwords for RabbitMQ and PostgreSQL,
# one broker user and one database role per service with a password of its own, the signer's
# key secret, the audit's sealing key and the notifier's key to the signer's link API. Run once;
# keep the file safe.
set -euo pipefail
secret() { python3 -c 'import secrets; print(secrets.token_urlsafe(24))'; }
echo "PARAAF_BROKER_ADMIN_PASSWORD=$(secret)"
echo "PARAAF_DB_ADMIN_PASSWORD=$(secret)"
echo "PARAAF_KEY_SECRET=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
# The audit's sealing key (Ed25519, the base64 of its 32 raw bytes): it signs the audit log's checkpoints.
echo "PARAAF_AUDIT_SEAL_KEY=$(python3 -c 'import base64, secrets; print(base64.b64encode(secrets.token_bytes(32)).decode())')"
echo "PARAAF_NOTIFIER_SIGNER_KEY=paraaf_$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
for service in intake router signer notifier audit; do
  upper=$(echo "$service" | tr a-z A-Z)
  echo "PARAAF_${upper}_AMQP_URL=amqp://paraaf.${service}:$(secret)@rabbitmq:5672/"
  echo "PARAAF_${upper}_DATABASE_URL=postgresql://paraaf_${service}:$(secret)@postgres:5432/paraaf"
done
echo "PARAAF_OPERATOR_AMQP_URL=amqp://paraaf.operator:$(secret)@rabbitmq:5672/"

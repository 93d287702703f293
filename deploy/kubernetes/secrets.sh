#!/usr/bin/env bash
# Prints the Secrets of a Paraaf installation on Kubernetes, with fresh random values, once:
#   deploy/kubernetes/secrets.sh | kubectl apply -f -
# One Secret per service with only its own credentials (its broker user and database role, which the setup Job
# creates with these passwords), the signer's key secret, the audit's sealing key, the notifier's key to the
# signer's link API; the operators' broker user. Optional, from the environment: SMTP_USER and SMTP_PASSWORD
# (the city's mail relay, for the notifier); BACKUP_ACCESS_KEY_ID and BACKUP_ACCESS_SECRET_KEY (the object
# store of the PostgreSQL backups). Running it again makes new passwords: then run the setup Job again.
# Keep PARAAF_KEY_SECRET somewhere safe outside the cluster as well (deploy/README.md, "Backups").
set -euo pipefail
namespace="${NAMESPACE:-paraaf}"
secret() { python3 -c 'import secrets; print(secrets.token_urlsafe(24))'; }
amqp() { echo "amqp://paraaf.$1:$(secret)@paraaf-rabbitmq:5672/"; }
database() { echo "postgresql://paraaf_$1:$(secret)@paraaf-db-rw:5432/paraaf"; }
header() {
  printf -- '---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\n  namespace: %s\n' "$1" "$namespace"
  printf '  labels:\n    app.kubernetes.io/part-of: paraaf\ntype: Opaque\nstringData:\n'
}
entry() { printf '  %s: "%s"\n' "$1" "$2"; }
for service in intake router signer notifier audit; do
  upper=$(echo "$service" | tr a-z A-Z)
  header "paraaf-$service"
  entry "PARAAF_${upper}_AMQP_URL" "$(amqp "$service")"
  entry "PARAAF_${upper}_DATABASE_URL" "$(database "$service")"
  case $service in
    signer) entry PARAAF_KEY_SECRET "$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')" ;;
    notifier)
      entry PARAAF_NOTIFIER_SIGNER_KEY "paraaf_$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
      if [ -n "${SMTP_USER:-}" ]; then entry PARAAF_SMTP_USER "$SMTP_USER"; entry PARAAF_SMTP_PASSWORD "${SMTP_PASSWORD:-}"; fi ;;
    audit) entry PARAAF_AUDIT_SEAL_KEY "$(python3 -c 'import base64, secrets; print(base64.b64encode(secrets.token_bytes(32)).decode())')" ;;
  esac
done
header paraaf-operator
entry PARAAF_OPERATOR_AMQP_URL "$(amqp operator)"
if [ -n "${BACKUP_ACCESS_KEY_ID:-}" ]; then
  header paraaf-backup-credentials
  entry ACCESS_KEY_ID "$BACKUP_ACCESS_KEY_ID"
  entry ACCESS_SECRET_KEY "${BACKUP_ACCESS_SECRET_KEY:?BACKUP_ACCESS_SECRET_KEY goes with BACKUP_ACCESS_KEY_ID}"
else
  echo "secrets.sh: no BACKUP_ACCESS_KEY_ID: make Secret paraaf-backup-credentials yourself, or PostgreSQL's WAL is not archived" >&2
fi

-- The sealing key's certificate from the organisation's CA (services/audit/seal.py); empty for
-- checkpoints sealed before `paraaf setup` certified the key.
ALTER TABLE checkpoints ADD COLUMN certificate text;

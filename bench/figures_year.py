"""The operators' figures over a reference city's year: how long one request for
every figure of that year takes (services/signer/figures), on a fresh database
holding ORGS such cities.

    python -m bench.figures_year [ORGS]

A city's year, written with SQL as the router and intake keep it: 45,000
documents (two signatures each: ~90,000, near the reference city's 97,000),
5 % declined, 3 % still waiting, one signature in ten by a substitute, a
decline reason in the audit log for each decline and 500 failed mails.
Printed: the rows per table, then the median of 5 reads of the whole year for
one city (every query of the dashboard, in one snapshot) and the slowest.

Measured here (2 shared cores, 2026-11-30): 1 city 0.50 s; 10 cities 2.0 s for
the same one city. The router's tables have no index by (org, time), so each
query reads every org's rows: the time grows with the installation, not with
the city (see the figures' report: indexes on instances (org, created_at),
(org, updated_at) and requests (org, decided_at) are the remedy).
"""

import asyncio
import statistics
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

import asyncpg

from bench.scratch import scratch_database
from services.signer.figures import FiguresReader, Period
from shared.db import migrations_of

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = {"router": "services/router/migrations", "intake": "services/intake/migrations", "audit": "services/audit/migrations"}
DOCUMENTS = 45_000

_SEED = """
WITH docs AS (
  SELECT $1::text AS org, gen_random_uuid() AS id, n,
         timestamptz '2025-01-01 08:00+01' + (n * interval '1 year' / $2) AS created,
         CASE WHEN n % 20 = 0 THEN 'declined' WHEN n % 33 = 0 THEN 'active' ELSE 'completed' END AS status,
         (ARRAY['Secretariaat','Omgeving','Personeel','Burgerzaken'])[1 + n % 4] AS department
    FROM generate_series(1, $2) n),
ins AS (
  INSERT INTO router.instances (document_id, org, flow_key, title, filename, submitted_by, confidential, department,
                                group_key, steps, current_step, status, pdf_sha256, created_at, updated_at)
  SELECT id, org, 'flow-' || (n % 12), 'Document ' || n, 'd.pdf', '{"id": "elen", "name": "Elen"}', n % 50 = 0, department,
         lower(department), '[{"action": "sign", "signers": ["person:a"]}, {"action": "sign", "signers": ["person:b"]}]',
         2, status, repeat('0', 64), created, created + interval '3 days'
    FROM docs RETURNING document_id),
intake AS (
  INSERT INTO intake.documents (document_id, org, source, external_ref, title, submitted_by, confidential, filename,
                                language, metadata, pdf_sha256, created_at)
  SELECT id, org, (ARRAY['notula','permits','portal'])[1 + n % 3], 'REF-' || n, 'Document ' || n, 'elen', false, 'd.pdf',
         'nl', '{}', repeat('0', 64), created FROM docs RETURNING document_id)
INSERT INTO router.requests (request_id, document_id, org, step, entry, person_id, person, on_behalf_of, action, status,
                             created_at, decided_at)
SELECT gen_random_uuid(), id, org, step, 'person:p', 'person-' || ((n + step) % 40),
       jsonb_build_object('id', 'person-' || ((n + step) % 40), 'name', 'Person ' || ((n + step) % 40)),
       CASE WHEN n % 10 = 0 THEN '{"id": "mayor", "name": "Mayor"}'::jsonb END, 'sign',
       CASE WHEN step = 2 AND status = 'declined' THEN 'declined' WHEN step = 2 AND status = 'active' THEN 'pending'
            ELSE 'signed' END,
       created + (step - 1) * interval '1 day' + interval '1 hour',
       CASE WHEN step = 2 AND status = 'active' THEN NULL ELSE created + step * interval '1 day' END
  FROM docs CROSS JOIN generate_series(1, 2) step
"""

# The audit log's append-only trigger allows inserts; the hash chain does not matter to the figures.
_AUDIT = """
INSERT INTO audit.log (seq, event_id, routing_key, org, document_id, occurred_at, payload, prev_hash, hash)
SELECT $2 + row_number() OVER (), gen_random_uuid(), kind, $1, document_id, decided_at,
       json_build_object('routing_key', kind, 'event', json_build_object('request_id', request_id, 'reason',
                         CASE WHEN kind = 'signature.declined' THEN 'Bedrag klopt niet' ELSE '550 No such user' END,
                         'kind', 'signature_request'))::text, '', ''
  FROM (SELECT r.document_id, r.request_id, r.decided_at, 'signature.declined' AS kind FROM router.requests r
         WHERE r.org = $1 AND r.status = 'declined'
        UNION ALL
        (SELECT r.document_id, r.request_id, r.created_at, 'notification.failed' FROM router.requests r
          WHERE r.org = $1 AND r.step = 1 LIMIT 500)) events
"""


async def _schemas(conn: asyncpg.Connection) -> None:
    for schema, folder in SCHEMAS.items():
        await conn.execute(f"CREATE SCHEMA {schema}")
        await conn.execute(f"SET search_path TO {schema}")
        for _, _, sql in migrations_of([ROOT / folder]):  # with the messaging tables a later migration alters
            await conn.execute(sql)
    await conn.execute("RESET search_path")


async def _city(conn: asyncpg.Connection, org: str) -> None:
    await conn.execute(_SEED, org, DOCUMENTS)
    await conn.execute(_AUDIT, org, await conn.fetchval("SELECT coalesce(max(seq), 0) FROM audit.log"))


async def _read_year(conn: asyncpg.Connection, org: str) -> tuple[float, int]:
    started = time.perf_counter()
    figures = await FiguresReader(conn).figures(org, Period(date(2025, 1, 1), date(2025, 12, 31)), None, "Europe/Brussels", datetime.now(UTC))
    return time.perf_counter() - started, figures.totals["signatures"]


async def main(orgs: int) -> None:
    async with scratch_database("figures") as url:
        conn = await asyncpg.connect(url)
        try:
            await _schemas(conn)
            started = time.perf_counter()
            for n in range(orgs):
                await _city(conn, f"city-{n}")
            await conn.execute("ANALYZE")
            print(f"seeded {orgs} cities in {time.perf_counter() - started:.1f} s:", {
                table: await conn.fetchval(f"SELECT count(*) FROM {table}")
                for table in ("router.instances", "router.requests", "intake.documents", "audit.log")
            })
            runs = [await _read_year(conn, "city-0") for _ in range(5)]
            times = [seconds for seconds, _ in runs]
            print(f"one city's year, every figure: median {statistics.median(times) * 1000:.0f} ms,"
                  f" slowest {max(times) * 1000:.0f} ms ({runs[0][1]} signatures counted)")
        finally:
            await conn.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1))

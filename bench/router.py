"""Router benchmarks: routing decisions per second on a large directory, and
moving 1,000 open requests when an absence starts.

    python -m bench.router

Every figure comes with a baseline measured in the same run on the same
machine (they are shared and noisy): read the ratios, not the absolute numbers.
"""

import asyncio
import random
import statistics
import subprocess
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from faststream.rabbit import RabbitBroker

from services.admin.broker import declare_topology
from services.router import handlers
from services.router.domain import Absence, Directory, Instance, Person, Request, Role, plan_step
from services.router.store import PostgresRouterStore
from shared.db import connect_pool, migrate
from shared.events import PersonRef, StepSpec
from shared.messaging import Outbox, OutboxRelay
from shared.topology import TOPOLOGY

PEOPLE, ROLES = 5_000, 500
NOW = datetime(2026, 7, 10, 8, 0, tzinfo=UTC)
MIGRATIONS = Path(__file__).resolve().parents[1] / "services" / "router" / "migrations"


def directory(absent_share: float, seed: int = 7) -> Directory:
    rng = random.Random(seed)
    ids = [f"p{i:05d}" for i in range(PEOPLE)]
    july = (NOW - timedelta(days=9), NOW + timedelta(days=21))
    return Directory(
        people={pid: Person(pid, f"Person {pid}", f"{pid}@stad.be") for pid in ids},
        roles={f"r{i}": Role(f"r{i}", f"role {i}", tuple(rng.sample(ids, rng.randint(1, 3)))) for i in range(ROLES)},
        substitutes={pid: tuple(rng.sample(ids, rng.randint(1, 3))) for pid in ids},
        absences={pid: (Absence(pid, *july),) for pid in ids if rng.random() < absent_share},
    )


def decisions_per_second(dir_: Directory, steps: list[StepSpec], seconds: float = 1.5) -> float:
    decisions, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for step in steps:
            decisions += len(plan_step(step, dir_, NOW))
    return decisions / (time.perf_counter() - started)


def bench_routing() -> None:
    rng = random.Random(1)
    signers = [f"role:r{i}" for i in range(ROLES)] + [f"person:p{i:05d}" for i in range(0, PEOPLE, 10)]
    steps = [StepSpec(signers=rng.sample(signers, rng.randint(1, 3))) for _ in range(500)]
    print(f"Routing decisions/s, {PEOPLE} people, {ROLES} roles (one decision = one person chosen for a signer entry):")
    baseline = None
    for label, share in (("nobody absent (baseline)", 0.0), ("10% absent", 0.10), ("50% absent (July)", 0.50)):
        rate = statistics.median(decisions_per_second(directory(share), steps) for _ in range(3))
        baseline = baseline or rate
        print(f"  {label:26s} {rate:10,.0f}/s   ratio to baseline {rate / baseline:.2f}")


async def _open_requests(store: PostgresRouterStore, person: PersonRef, count: int) -> None:
    """``count`` documents each waiting on ``person``: what the router writes when it opens a step."""
    for n in range(count):
        document_id = uuid.uuid4()
        await store.insert_instance(
            Instance(
                document_id=document_id,
                org="default",
                title=f"Besluit {n}",
                filename="besluit.pdf",
                submitted_by=PersonRef(id="p00001", name="Person p00001"),
                confidential=False,
                steps=(StepSpec(signers=[f"person:{person.id}"]),),
                pdf_sha256="0" * 64,
            )
        )
        await store.insert_request(
            Request(uuid.uuid4(), document_id, "default", step=1, entry=f"person:{person.id}", person=person, action="sign")
        )


async def _timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    await work()  # type: ignore[misc]
    return time.perf_counter() - started


async def bench_reassignment(count: int = 1_000) -> None:
    name = f"paraaf_bench_{uuid.uuid4().hex[:8]}"
    vhost = name.replace("_", "-")
    admin = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    subprocess.run(["rabbitmqctl", "add_vhost", vhost], check=True, capture_output=True)
    subprocess.run(["rabbitmqctl", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"], check=True, capture_output=True)
    pool = await connect_pool(f"postgresql://postgres@127.0.0.1:5432/{name}", max_size=2)
    broker = RabbitBroker(f"amqp://guest:guest@127.0.0.1:5672/{vhost}", logger=None)
    try:
        await migrate(pool, "router", [MIGRATIONS])
        await broker.connect()
        await declare_topology(f"amqp://guest:guest@127.0.0.1:5672/{vhost}", TOPOLOGY, delivery_limit=5)
        outbox = Outbox("router")
        people = [("director", "Director"), ("deputy", "Deputy")]
        await pool.executemany(
            "INSERT INTO router.people (org, id, name, email) VALUES ('default', $1, $2, $1 || '@stad.be')", people
        )
        await pool.execute("INSERT INTO router.substitutes VALUES ('default', 'director', ARRAY['deputy'])")
        director = PersonRef(id="director", name="Director", email="director@stad.be")
        async with pool.acquire() as conn:
            store = PostgresRouterStore(conn, outbox)
            async with conn.transaction():
                opened = await _timed(lambda: _open_requests(store, director, count))
            await conn.execute(
                "INSERT INTO router.absences (id, org, person_id, starts_at, ends_at, source)"
                " VALUES ($1, 'default', 'director', $2, $3, 'api')",
                uuid.uuid4(),
                NOW - timedelta(hours=1),
                NOW + timedelta(days=14),
            )
            away = await store.load_directory("default")

            async def move() -> None:
                async with conn.transaction():
                    moved = await handlers.move_work_of(store, "default", "director", away, NOW, absence_id=uuid.uuid4())
                assert moved == count, moved

            moving = await _timed(move)
        relay = OutboxRelay(pool, broker, "router", user_id="guest")

        async def publish_all() -> None:
            while await relay.publish_pending():
                pass

        publishing = await _timed(publish_all)
        print(f"Moving {count:,} open requests when an absence starts (PostgreSQL, then RabbitMQ):")
        print(f"  opening the same {count:,} requests (baseline)  {opened:6.2f} s")
        print(f"  moving them to the substitute (one transaction) {moving:6.2f} s   ratio to baseline {moving / opened:.2f}")
        print(f"  publishing the {2 * count:,} resulting events (persistent, confirmed) {publishing:6.2f} s")
    finally:
        await broker.stop()
        await pool.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        subprocess.run(["rabbitmqctl", "delete_vhost", vhost], capture_output=True)


def main() -> None:
    bench_routing()
    asyncio.run(bench_reassignment())


if __name__ == "__main__":
    main()

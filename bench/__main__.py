"""Run every benchmark, one after the other: ``python -m bench``."""

from bench import audit, audit_burst, bulk, router, signer

BENCHMARKS = {
    "router": router.main, "signer": lambda: signer.main([]), "audit": audit.main, "audit_burst": lambda: audit_burst.main([]),
    "bulk": lambda: bulk.main([]),
}
BENCHMARKS["orgs"] = lambda: __import__("bench.orgs", fromlist=["main"]).main([])  # many cities on one installation

if __name__ == "__main__":
    for name, run in BENCHMARKS.items():
        print(f"== {name}", flush=True)
        run()

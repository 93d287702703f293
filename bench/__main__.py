"""Run every benchmark, one after the other: ``python -m bench``."""

from bench import audit, audit_burst, bulk, pipeline, router, signer

BENCHMARKS = {
    "router": router.main, "signer": lambda: signer.main([]), "audit": audit.main, "audit_burst": lambda: audit_burst.main([]),
    "bulk": lambda: bulk.main([]),
    "pipeline": lambda: pipeline.main([]),  # the whole pipeline end to end, with its limits and ratios (~3 min)
}

if __name__ == "__main__":
    for name, run in BENCHMARKS.items():
        print(f"== {name}", flush=True)
        run()

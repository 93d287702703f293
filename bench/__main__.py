"""Run every benchmark, one after the other: ``python -m bench``."""

from bench import audit, router, signer

BENCHMARKS = {"router": router.main, "signer": lambda: signer.main([]), "audit": audit.main}

if __name__ == "__main__":
    for name, run in BENCHMARKS.items():
        print(f"== {name}", flush=True)
        run()

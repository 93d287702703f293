"""Run every benchmark, one after the other: ``python -m bench``."""

from bench import router, signer

BENCHMARKS = {"router": router.main, "signer": lambda: signer.main([])}

if __name__ == "__main__":
    for name, run in BENCHMARKS.items():
        print(f"== {name}", flush=True)
        run()

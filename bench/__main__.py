"""Run every benchmark, one after the other: ``python -m bench``; only some: ``python -m bench scaling pipeline``."""

import sys

from bench import audit, audit_burst, blobs, bulk, pipeline, router, scaling, signer

BENCHMARKS = {
    "router": router.main, "signer": lambda: signer.main([]), "audit": audit.main, "audit_burst": lambda: audit_burst.main([]),
    "bulk": lambda: bulk.main([]),
    "blobs": lambda: blobs.main([]),  # PostgreSQL's CPU for a stored PDF version, pglz against lz4 (~10 s)
    "scaling": lambda: scaling.main([]),  # the PDF work per document for 1/10/100 pages and 1/5/10 signers (~10 s)
    "pipeline": lambda: pipeline.main([]),  # the whole pipeline end to end, with its limits and ratios (~3 min)
}
BENCHMARKS["orgs"] = lambda: __import__("bench.orgs", fromlist=["main"]).main([])  # many cities on one installation

if __name__ == "__main__":
    chosen = sys.argv[1:] or list(BENCHMARKS)
    unknown = [name for name in chosen if name not in BENCHMARKS]
    if unknown:
        sys.exit(f"no such bench: {', '.join(unknown)}; there are: {', '.join(BENCHMARKS)}")
    for name, run in ((name, BENCHMARKS[name]) for name in chosen):
        print(f"== {name}", flush=True)
        run()

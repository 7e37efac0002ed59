"""What the benchmarks share: the options every one of them takes."""
import argparse
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def arguments(doc, connections, build=True, runs=5, seconds=5):
    """A parser with the usual options: --runs (interleaved rounds, of which the tables give
    medians), --seconds (each measurement), --connections and, unless `build` is False,
    --build (the build directory whose programs are measured)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=runs, help="rounds (default %d)" % runs)
    ap.add_argument("--seconds", type=int, default=seconds, help="seconds a measurement (default %d)" % seconds)
    ap.add_argument("--connections", type=type(connections), default=connections,
                    help="connections of the load (default %s)" % connections)
    if build:
        ap.add_argument("--build", default=os.path.join(ROOT, "build"), help="the build to measure (default build/)")
    return ap

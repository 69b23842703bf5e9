#!/usr/bin/env python3
"""bench_size.py -- the size of each target's binary in dist/ (make dist),
against the portability goal of 300 KB per Linux binary. Prints markdown.

    make dist && /usr/bin/python3 bench/bench_size.py [DIST]
"""
import os
import sys

GOAL = 300_000
HERE = os.path.dirname(os.path.abspath(__file__))
DIST = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "dist")


def main():
    names = sorted(n for n in os.listdir(DIST) if n.startswith("appd-")) \
        if os.path.isdir(DIST) else []
    if not names:
        print("bench_size: no dist/appd-* (run: make dist)", file=sys.stderr)
        return 1
    print("### Binary size per target (`make dist`, static, stripped)\n")
    print("| target | bytes | KiB | goal ≤ 300 KB |")
    print("|---|---|---|---|")
    miss = 0
    for n in names:
        size = os.stat(os.path.join(DIST, n)).st_size
        ok = size <= GOAL
        miss += not ok
        print("| %s | %d | %.1f | %s |" % (n[len("appd-"):], size, size / 1024,
                                          "PASS" if ok else "**MISS**"))
    print("\nReproduce: `make dist && /usr/bin/python3 bench/bench_size.py`")
    return 0


if __name__ == "__main__":
    sys.exit(main())

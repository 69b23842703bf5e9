#!/usr/bin/env python3
"""coverage.py BINDIR CORPUS LLVM_BIN -- line coverage of each fuzz target's
parser: run every input of CORPUS/<name>/ and tests/fuzz/corpus/<name>/
once through BINDIR/fuzz_<name> (built with clang's source-based coverage
by `make fuzz-cov`), merge the profile, and print llvm-cov's line coverage
of the files (and, for the URL target, the functions) that target is
about."""
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
# what each target fuzzes: whole files, or functions of a larger file
FILES = {
    "json": ["core/base/jsonr.c"],
    "manifest": ["core/update/manifest.c"],
    "http": ["core/net/http.c"],
    "trust": ["core/update/trust.c"],
    "wsprobe": ["core/net/wsprobe.c"],
    "url": [],
}
FUNCS = {
    "json": ["pidrec_parse", "status_parse", "settings.c:load", "settings.c:parse_liveness"],
    "url": ["https_url_split", "https_resolve_location"],
    "manifest": ["sig_text_parse"],
}


def main():
    bindir, corpus, llvm = sys.argv[1], sys.argv[2], sys.argv[3]
    print("%-9s %8s  %s" % ("target", "inputs", "line coverage (llvm-cov)"))
    for name in sorted(FILES):
        b = os.path.join(bindir, "fuzz_" + name)
        dirs = [d for d in (os.path.join(corpus, name), os.path.join(HERE, "corpus", name))
                if os.path.isdir(d)]
        n = sum(len(os.listdir(d)) for d in dirs)
        raw = os.path.join(bindir, name + ".profraw")
        data = os.path.join(bindir, name + ".profdata")
        env = dict(os.environ, LLVM_PROFILE_FILE=raw)
        subprocess.run([b, "-runs=0", "-timeout=10"] + dirs, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        subprocess.run([os.path.join(llvm, "llvm-profdata"), "merge", "-sparse", raw,
                        "-o", data], check=True)
        parts = []
        for f in FILES[name]:
            out = subprocess.run([os.path.join(llvm, "llvm-cov"), "report", b,
                                  "-instr-profile=" + data, os.path.join(ROOT, f)],
                                 capture_output=True, text=True, check=True).stdout
            tot = [l for l in out.splitlines() if l.startswith("TOTAL")]
            cols = tot[0].split() if tot else []
            # TOTAL regions missed cover functions missed exec lines missed cover ...
            if len(cols) >= 10:
                parts.append("%s %s of %s lines" % (f, cols[9], cols[7]))
        for fn in FUNCS.get(name, []):
            out = subprocess.run([os.path.join(llvm, "llvm-cov"), "report", b,
                                  "-instr-profile=" + data, "--show-functions",
                                  "--name=" + fn] +
                                 [os.path.join(ROOT, p) for p in
                                  ("core/pidfile.c", "core/status.c", "core/settings.c",
                                   "core/net/https.c", "core/update/sig.c")],
                                 capture_output=True, text=True).stdout
            for l in out.splitlines():
                m = re.match(r"^(\S+)\s+\d+\s+\d+\s+\S+\s+(\d+)\s+(\d+)\s+(\S+)", l)
                if m and m.group(1) == fn:
                    parts.append("%s() %s of %s lines" % (fn, m.group(4), m.group(2)))
        print("%-9s %8d  %s" % (name, n, "; ".join(parts)))


main()

#!/usr/bin/env python3
"""tests/plugins/relay/layers.py — the plugin's files call each other one way (no circle).

Reads the object files of a plugin (nm: which file defines each symbol, which file uses it),
builds the file-level call graph, prints it by layer (bottom first) and fails if any files call
each other in a circle. Arguments: a plugin's object directory, then its source files (only
their objects are read: a directory may hold stale ones of files since removed)."""
import os
import subprocess
import sys


def graph(objdir, sources):
    defs, uses = {}, {}
    objs = [os.path.join(objdir, os.path.basename(c) + ".o") for c in sources if c.endswith(".c")]
    for o in sorted(objs):
        f = os.path.basename(o)[: -len(".c.o")] if o.endswith(".c.o") else os.path.basename(o)
        out = subprocess.run(["nm", o], capture_output=True, text=True, check=True).stdout
        uses.setdefault(f, set())
        for line in out.splitlines():
            p = line.split()
            if len(p) == 3 and p[1] in "TDRB":
                defs[p[2]] = f
            elif len(p) == 2 and p[0] == "U":
                uses[f].add(p[1])
    edges = {f: {} for f in uses}
    for f, us in uses.items():
        for u in us:
            g = defs.get(u)
            if g and g != f:
                edges[f].setdefault(g, []).append(u)
    return edges


def layers(edges):
    """Kahn's algorithm from the bottom: (list of layers, the files left in circles)."""
    left = {f: set(e) for f, e in edges.items()}
    out = []
    while left:
        bottom = sorted(f for f, e in left.items() if not (e & set(left)))
        if not bottom:
            break
        out.append(bottom)
        for f in bottom:
            del left[f]
    return out, left


def main():
    if len(sys.argv) < 3:
        print("usage: layers.py OBJDIR SOURCE...")
        return 2
    bad = 0
    for d, sources in [(sys.argv[1], sys.argv[2:])]:
        missing = [c for c in sources if c.endswith(".c") and
                   not os.path.exists(os.path.join(d, os.path.basename(c) + ".o"))]
        if missing:
            print("FAIL: no object for %s in %s" % (" ".join(missing), d))
            bad = 1
            continue
        edges = graph(d, sources)
        if len(edges) < 2:
            print("FAIL: no object files in %s" % d)
            bad = 1
            continue
        ls, circle = layers(edges)
        print("%s: %d files" % (d, len(edges)))
        for i, layer in enumerate(ls):
            print("  layer %d: %s" % (i, " ".join(layer)))
        if circle:
            bad = 1
            print("FAIL: these files call each other in a circle:")
            for f in sorted(circle):
                for g in sorted(set(edges[f]) & set(circle)):
                    print("  %s -> %s: %s" % (f, g, " ".join(sorted(edges[f][g]))))
    print("FAIL" if bad else "ok: every call points down")
    return bad


if __name__ == "__main__":
    sys.exit(main())

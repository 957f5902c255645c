#!/usr/bin/env python3
"""tests/plugins/relay/layers.py — the plugin's files call each other one way (no circle).

Reads the object files of a plugin (nm: which file defines each symbol, which file uses it),
builds the file-level call graph, prints it by layer (bottom first) and fails if any files call
each other in a circle. Arguments: the object directories (one per plugin)."""
import glob
import os
import subprocess
import sys


def graph(objdir):
    defs, uses = {}, {}
    for o in sorted(glob.glob(os.path.join(objdir, "*.o"))):
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
    if len(sys.argv) < 2:
        print("usage: layers.py OBJDIR...")
        return 2
    bad = 0
    for d in sys.argv[1:]:
        edges = graph(d)
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

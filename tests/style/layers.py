#!/usr/bin/env python3
"""Checks that core/'s layers include downwards only, and plugins only the public headers.

core/<layer>/ folders, bottom first: a file may include headers of its own layer and of the
layers below it, never above. Plugins may include include/tallow/*.h and their own folder's
headers, never core/'s. Prints every violation; exits 1 if there is one."""
import os
import re
import sys

LAYERS = ["base", "crypto", "net", "session", "transfer", "lua", "bin"]
INC = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def main(root):
    core = os.path.join(root, "core")
    where = {}  # header basename -> layer
    files = []
    for layer in sorted(os.listdir(core)):
        d = os.path.join(core, layer)
        if not os.path.isdir(d):
            continue
        if layer not in LAYERS:
            print(f"core/{layer}/: not a known layer (known, bottom first: {', '.join(LAYERS)})")
            return 1
        for f in sorted(os.listdir(d)):
            if f.endswith((".c", ".h")):
                files.append((layer, os.path.join(d, f)))
                if f.endswith(".h"):
                    where[f] = layer
    loose = [f for f in os.listdir(core) if f.endswith((".c", ".h"))]
    bad = [f"core/{f}: a source file outside every layer folder" for f in sorted(loose)]
    for layer, path in files:
        for inc in INC.findall(open(path, encoding="utf-8").read()):
            if inc.startswith("tallow/"):
                continue
            target = where.get(os.path.basename(inc))
            if target is None:
                bad.append(f"{os.path.relpath(path, root)}: includes {inc}, not found in core/")
            elif LAYERS.index(target) > LAYERS.index(layer):
                bad.append(f"{os.path.relpath(path, root)} ({layer}) includes {inc} "
                           f"of the higher layer {target}")
    for dirpath, _, names in os.walk(os.path.join(root, "plugins")):
        for f in names:
            if not f.endswith((".c", ".h")):
                continue
            path = os.path.join(dirpath, f)
            for inc in INC.findall(open(path, encoding="utf-8").read()):
                if inc.startswith("tallow/"):
                    continue
                if not os.path.exists(os.path.join(dirpath, inc)):
                    bad.append(f"{os.path.relpath(path, root)}: includes {inc}, which is not "
                               "a public header (include/tallow) nor one of its plugin's own")
    for b in bad:
        print(b)
    print(f"layers: {len(files)} core files in {len(LAYERS)} layers checked, "
          f"{len(bad)} violation(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "."))

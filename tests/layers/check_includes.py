#!/usr/bin/env python3
"""The include direction of chatp2pd/ and chatp2pctl/ (docs/architecture.md).

Reads every `#include "..."` line of the two programs' sources and fails on
  - a cycle between units (x.c + x.h form one unit), directly or in a ring;
  - an include of a header in a higher layer than the including file's.
The layer order is written once, in chatp2pd/LAYERS (top to bottom; names on
one line share a rank but may not include each other).  Without that file
(the flat folder of 905dabf) the whole program is one layer and only the
cycle check applies.  common/ is below every layer.

usage: check_includes.py [SOURCE_ROOT]
"""
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def sources(root, prog):
    top = os.path.join(root, prog)
    for d, _, files in os.walk(top):
        for f in sorted(files):
            if f.endswith((".c", ".h")):
                yield os.path.relpath(os.path.join(d, f), root)


def resolve(root, prog, src, inc):
    """The repository path an include names: beside the file, from the
    program's top (layer paths such as "net/conn.h"), or common/."""
    for base in (os.path.dirname(src), prog, "common"):
        cand = os.path.normpath(os.path.join(base, inc))
        if os.path.exists(os.path.join(root, cand)):
            return cand
    return None  # generated (version.h) or a system header in quotes


def unit(path):
    return os.path.splitext(path)[0]


def read_layers(root, prog):
    """[[name, ...], ...] top to bottom, or None (one flat layer)."""
    path = os.path.join(root, prog, "LAYERS")
    if not os.path.exists(path):
        return None
    ranks = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].split()
            if line:
                ranks.append(line)
    return ranks


def layer_of(prog, path, ranks):
    """(rank, name) of a file: the longest layer name its path starts with."""
    rel = os.path.relpath(path, prog)
    best = None
    for i, names in enumerate(ranks):
        for name in names:
            if rel == name or rel.startswith(name.rstrip("/") + "/"):
                if best is None or len(name) > len(best[1]):
                    best = (i, name)
    return best


def sccs(graph):
    """Tarjan's strongly connected components (iterative)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def check(root, prog, errors):
    ranks = read_layers(root, prog)
    graph, why = {}, {}
    for src in sources(root, prog):
        u = unit(src)
        graph.setdefault(u, set())
        with open(os.path.join(root, src), encoding="utf-8", errors="replace") as f:
            text = f.read()
        for inc in INCLUDE.findall(text):
            dst = resolve(root, prog, src, inc)
            if dst is None or dst.startswith("common/"):
                continue
            if not dst.startswith(prog + "/"):
                errors.append(f"{src}: includes {inc}, outside {prog}/ and common/")
                continue
            v = unit(dst)
            if v != u:
                graph[u].add(v)
                why.setdefault((u, v), f"{src} includes \"{inc}\"")
            if ranks is None:
                continue
            a, b = layer_of(prog, src, ranks), layer_of(prog, dst, ranks)
            if a is None or b is None:
                errors.append(f"{src if a is None else dst}: in no layer of {prog}/LAYERS")
            elif b[0] < a[0]:
                errors.append(f"{src}: includes \"{inc}\", a higher layer ({b[1]} above {a[1]})")
            elif b[0] == a[0] and b[1] != a[1]:
                errors.append(f"{src}: includes \"{inc}\": {b[1]} and {a[1]} share a rank "
                              f"and may not include each other")
    for comp in sccs(graph):
        members = set(comp)
        edges = [why[(u, v)] for u in comp for v in sorted(graph[u]) if v in members]
        errors.append("include cycle between units " + ", ".join(comp) + ":\n    " +
                      "\n    ".join(edges))
    return len(graph)


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                           os.path.join(os.path.dirname(__file__), "..", ".."))
    errors = []
    for prog in ("chatp2pd", "chatp2pctl"):
        n = check(root, prog, errors)
        print(f"{prog}/: {n} units, layers from "
              f"{prog + '/LAYERS' if read_layers(root, prog) else '(one flat layer)'}")
    for e in errors:
        print("FAIL " + e)
    if errors:
        print(f"{len(errors)} problem(s)")
        return 1
    print("ok: no include cycle, no include upward")
    return 0


if __name__ == "__main__":
    sys.exit(main())

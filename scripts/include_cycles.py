#!/usr/bin/env python3
"""List include cycles among perfopt's sources.

A module is a .c file with the header it implements, the .h of the same
name that it includes (src/cache/redis.c + src/cache/redis.h); a header no
.c file implements (one that only gathers others) is a node of its own.
Module A depends on module B when A's .c or .h includes B's .h.  A cycle
(A needs B and B needs A, directly or through others) is printed as one
line; headers that include each other are a cycle too.  Exit status 1 when
there is one.  Usage: scripts/include_cycles.py [src]
"""
import os
import re
import sys

root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), '..', 'src')
root = os.path.normpath(root)
include = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)

def includes(path):
    with open(path, encoding='utf-8', errors='replace') as f:
        return include.findall(f.read())


files = []
for folder, _, names in os.walk(root):
    files += [os.path.join(folder, n) for n in names if n.endswith(('.c', '.h'))]
header_module = {}
for path in files:
    rel = os.path.relpath(path, root)
    if rel.endswith('.h'):
        source = path[:-2] + '.c'
        implemented = os.path.exists(source) and rel in includes(source)
        header_module[rel] = rel[:-2] if implemented else rel
modules = {}
for path in files:
    rel = os.path.relpath(path, root)
    module = header_module[rel] if rel.endswith('.h') else rel[:-2]
    modules.setdefault(module, []).append(path)

graph = {m: set() for m in modules}
for module, paths in modules.items():
    for path in paths:
        for target in includes(path):
            dep = header_module.get(target)
            if dep is not None and dep != module:
                graph[module].add(dep)

# Tarjan's strongly connected components
index, low, stack, on, cycles = {}, {}, [], set(), []


def visit(v, counter=[0]):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on.add(v)
    for w in sorted(graph[v]):
        if w not in index:
            visit(w)
            low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        component = []
        while True:
            w = stack.pop()
            on.discard(w)
            component.append(w)
            if w == v:
                break
        if len(component) > 1:
            cycles.append(sorted(component))


sys.setrecursionlimit(10000)
for v in sorted(graph):
    if v not in index:
        visit(v)

for cycle in cycles:
    print('cycle: ' + ' <-> '.join(cycle))
print('%d module(s), %d cycle(s)' % (len(graph), len(cycles)))
sys.exit(1 if cycles else 0)

#!/usr/bin/env python3
"""List module import circles inside each crate of the workspace.

A module is a source file (`src/a.rs` and `src/a/mod.rs` are `a`, `src/a/b.rs` is `a::b`, `lib.rs`
is the root). Module A depends on module B when A's code (comments and strings left out) names a
path into B: `use crate::b::X`, an inline `crate::b::X`, `super::X`, `self::b::X`, or a relative
`b::X` where `b` is a child module of A. A name is followed through `pub use` re-exports to the
module that defines it, so `use crate::X` (re-exported by lib.rs) is an edge to where `X` lives,
not to the root.

Edges from a module to one of its ancestors (a child using its parent's items through `super::`)
are left out: the parent declares and owns the child, so such a pair is no circle between
equals; `--ancestors` counts them too. Edges from `#[cfg(test)]` code are left out
unless `--tests` is given.

Prints, per crate, each strongly connected component of two or more modules with the edges that
close it, and exits 1 when any crate has one.

Usage: python3 scripts/module_cycles.py [--tests] [--ancestors] [--edges] [CRATE_DIR ...]
"""

import os
import re
import sys

ITEM_RE = re.compile(
    r"\b(?:struct|enum|trait|fn|type|const|static|union|mod)\s+(\w+)|\bmacro_rules!\s*(\w+)"
)


def strip(text):
    """Blanks comments, string and char literals, keeping offsets and newlines."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "r" and re.match(r'r#*"', text[i:]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            hashes = re.match(r"r(#*)\"", text[i:]).group(1)
            end = text.find('"' + hashes, i + 2 + len(hashes))
            end = n if end < 0 else end + 1 + len(hashes)
            out.append(re.sub(r"[^\n]", " ", text[i:end]))
            i = end
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(re.sub(r"[^\n]", " ", text[i : j + 1]))
            i = j + 1
        elif c == "'":
            m = re.match(r"'(\\.[^']*|[^\\'])'", text[i:])
            if m:
                out.append(" " * len(m.group(0)))
                i += len(m.group(0))
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def module_of(src, path):
    rel = os.path.relpath(path, src)[:-3].split(os.sep)
    if rel[-1] in ("lib", "main", "mod"):
        rel = rel[:-1]
    return tuple(rel)


def expand_use(tree):
    """Expands a use tree (`a::{b, c::{d as e}}`) into segment lists."""
    tree = re.sub(r"\s+", "", tree)
    out = []

    def rec(prefix, t):
        i = t.find("{")
        if i < 0:
            segs = [s for s in re.sub(r"\bas\w+$", "", t).split("::") if s]
            out.append(prefix + segs)
            return
        head = [s for s in t[:i].split("::") if s]
        body = t[i + 1 : t.rfind("}")]
        depth, start = 0, 0
        for j, ch in enumerate(body + ","):
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == "," and depth == 0:
                part = body[start:j]
                if part:
                    rec(prefix + head, part)
                start = j + 1

    rec([], tree)
    return out


class Crate:
    def __init__(self, root):
        self.root = root
        self.src = os.path.join(root, "src")
        self.files = {}
        for d, _, fs in os.walk(self.src):
            for f in fs:
                if f.endswith(".rs"):
                    p = os.path.join(d, f)
                    self.files[module_of(self.src, p)] = p
        self.modules = set(self.files)
        self.text = {m: strip(open(p, encoding="utf-8").read()) for m, p in self.files.items()}
        self.test_modules = set()
        self.defs, self.reexports, self.globs = {}, {}, {}
        for m, t in self.text.items():
            for mm in re.finditer(r"#\[cfg\(test\)\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", t):
                self.test_modules.add(m + (mm.group(1),))
            self.defs[m] = {a or b for a, b in ITEM_RE.findall(t)}
            self.reexports[m], self.globs[m] = {}, []
            for u in re.finditer(r"\bpub(?:\([^)]*\))?\s+use\s+([^;]+);", t):
                for segs in expand_use(u.group(1)):
                    alias = re.search(r"\bas\s+(\w+)\s*$", u.group(1))
                    absolute = self.absolute(m, segs)
                    if absolute is None:
                        continue
                    if segs[-1] == "*":
                        self.globs[m].append(absolute[:-1])
                    else:
                        self.reexports[m][segs[-1]] = absolute
        for m in list(self.test_modules):
            self.test_modules |= {x for x in self.modules if x[: len(m)] == m}

    def children(self, m):
        return {x[-1] for x in self.modules if len(x) == len(m) + 1 and x[: len(m)] == m}

    def absolute(self, m, segs):
        """Absolute segment list of a path written in module m, or None if it leaves the crate."""
        if not segs:
            return None
        if segs[0] == "crate":
            return list(segs[1:])
        if segs[0] in ("self", "super"):
            base = list(m)
            while segs and segs[0] in ("self", "super"):
                if segs[0] == "super":
                    if not base:
                        return None
                    base.pop()
                segs = segs[1:]
            return base + list(segs)
        if segs[0] in self.children(m):
            return list(m) + list(segs)
        return None

    def resolve(self, segs, seen=None):
        """The module that defines the item the absolute path names."""
        seen = seen or set()
        k = len(segs)
        while k > 0 and tuple(segs[:k]) not in self.modules:
            k -= 1
        mod = tuple(segs[:k])
        rest = segs[k:]
        if not rest or rest[0] in ("*", "self"):
            return mod
        name = rest[0]
        key = (mod, name)
        if key in seen or name in self.defs.get(mod, ()):
            return mod
        seen.add(key)
        if name in self.reexports.get(mod, {}):
            return self.resolve(self.reexports[mod][name], seen)
        for g in self.globs.get(mod, []):
            target = self.resolve(list(g) + [name], seen)
            if name in self.defs.get(target, ()) or target != tuple(g):
                return target
        return mod

    def edges(self, tests, ancestors):
        """{(from, to): [line, ...]}"""
        result = {}
        for m, t in self.text.items():
            if m in self.test_modules and not tests:
                continue
            test_spans = []
            if not tests:
                for mm in re.finditer(r"#\[cfg\(test\)\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+\w+\s*\{", t):
                    start, depth, j = mm.end() - 1, 0, mm.end() - 1
                    while j < len(t):
                        if t[j] == "{":
                            depth += 1
                        elif t[j] == "}":
                            depth -= 1
                            if depth == 0:
                                break
                        j += 1
                    test_spans.append((start, j))
            found = []
            for u in re.finditer(r"\buse\s+([^;]+);", t):
                for segs in expand_use(u.group(1)):
                    found.append((u.start(), segs))
            kids = self.children(m)
            for p in re.finditer(r"(?<![\w:])((?:crate|self|super|\w+)(?:::\w+)+)", t):
                segs = p.group(1).split("::")
                if segs[0] in ("crate", "self", "super") or segs[0] in kids:
                    found.append((p.start(), segs))
            for pos, segs in found:
                if any(a <= pos <= b for a, b in test_spans):
                    continue
                absolute = self.absolute(m, segs)
                if absolute is None:
                    continue
                target = self.resolve(absolute)
                if target == m or target not in self.modules:
                    continue
                if target in self.test_modules and not tests:
                    continue
                if not ancestors and m[: len(target)] == target:
                    continue
                line = t.count("\n", 0, pos) + 1
                lines = result.setdefault((m, target), [])
                if line not in lines:
                    lines.append(line)
        return result


def sccs(nodes, adj):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(adj.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(sorted(comp))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def name(crate, m):
    return crate + ("::" + "::".join(m) if m else "")


def main(argv):
    tests = "--tests" in argv
    ancestors = "--ancestors" in argv
    show_edges = "--edges" in argv
    dirs = [a for a in argv if not a.startswith("--")]
    if not dirs:
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        dirs = sorted(
            os.path.join(here, d) for d in os.listdir(here) if os.path.isfile(os.path.join(here, d, "src", "lib.rs"))
        )
    total = 0
    for d in dirs:
        crate = Crate(d)
        cname = os.path.basename(os.path.normpath(d)).replace("-", "_")
        edges = crate.edges(tests, ancestors)
        adj = {}
        for a, b in edges:
            adj.setdefault(a, set()).add(b)
        if show_edges:
            for (a, b), lines in sorted(edges.items()):
                print(f"  {name(cname, a)} -> {name(cname, b)}  (lines {', '.join(map(str, lines))})")
        comps = [c for c in sccs(crate.modules, adj) if len(c) > 1]
        print(f"{cname}: {len(comps)} circle(s)")
        for comp in comps:
            total += 1
            print("  circle: " + ", ".join(name(cname, m) for m in comp))
            members = set(comp)
            for (a, b), lines in sorted(edges.items()):
                if a in members and b in members:
                    rel = os.path.relpath(crate.files[a], os.path.dirname(os.path.normpath(d)))
                    print(f"    {'::'.join(a) or '(root)'} -> {'::'.join(b) or '(root)'}  ({rel}:{','.join(map(str, lines))})")
    print(f"total: {total} circle(s)")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

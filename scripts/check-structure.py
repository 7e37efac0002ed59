#!/usr/bin/env python3
"""The structure rules of docs/architecture.md, checked on the C sources of replica/,
publisher/ and common/: no C file over 450 lines, no function over 80 lines, and no call
circle among the files (a file calls a function defined in another; no file reaches itself
that way). Prints each breach on its own line and exits 1 if there is one."""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FOLDERS = ("common", "replica", "publisher")
MAX_FILE, MAX_FUNCTION = 450, 80

CALL = re.compile(r"\b([A-Za-z_]\w*)\s*\(")


def sources():
    for folder in FOLDERS:
        for name in sorted(os.listdir(os.path.join(ROOT, folder))):
            if name.endswith(".c"):
                yield os.path.join(folder, name)


def strip(text):
    """The code without comments and string literals (calls are not found inside them)."""
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r'"(\\.|[^"\\\n])*"', '""', text)


def functions(lines):
    """(name, first line, length) of every function defined at the top level: a "{" alone at
    the start of a line, below a signature that starts at column 0 (it may span lines)."""
    start = None
    for i, line in enumerate(lines):
        if start is None and line == "{" and i > 0 and lines[i - 1].rstrip().endswith(")"):
            j = i - 1
            while j > 0 and lines[j][:1] in (" ", "\t"):
                j -= 1
            m = re.search(r"(\w+)\s*\(", lines[j])
            start = (m.group(1) if m else "?", j)
        elif start is not None and line == "}":
            yield start[0], start[1] + 1, i - start[1] + 1
            start = None


def cycles(graph):
    """Every file that reaches itself, with one circle through it."""
    found = []
    for origin in sorted(graph):
        stack, seen = [(origin, [origin])], set()
        while stack:
            node, path = stack.pop()
            for nxt in sorted(graph.get(node, ())):
                if nxt == origin:
                    found.append(path + [origin])
                    stack = []
                    break
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, path + [nxt]))
    return found


def main():
    breaches = []
    defined, code = {}, {}
    for path in sources():
        text = open(os.path.join(ROOT, path)).read()
        lines = text.split("\n")
        if len(lines) - 1 > MAX_FILE:
            breaches.append("%s: %d lines (at most %d)" % (path, len(lines) - 1, MAX_FILE))
        for name, first, length in functions(lines):
            if length > MAX_FUNCTION:
                breaches.append("%s:%d: %s is %d lines (at most %d)" % (path, first, name, length, MAX_FUNCTION))
            if not lines[first - 1].startswith("static"):
                defined.setdefault(name, path)
        code[path] = strip(text)
    graph = {}
    for path, text in code.items():
        for name in set(CALL.findall(text)):
            home = defined.get(name)
            if home is not None and home != path:
                graph.setdefault(path, set()).add(home)
    circles = cycles(graph)
    reported = set()
    for circle in circles:
        key = frozenset(circle)
        if key not in reported:
            reported.add(key)
            breaches.append("call circle: " + " -> ".join(circle))
    for b in breaches:
        print(b)
    print("structure: %d C files, %d breaches" % (len(code), len(breaches)))
    return 1 if breaches else 0


if __name__ == "__main__":
    sys.exit(main())

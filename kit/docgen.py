"""The docs' generated tables: the figure lines of a run, by name, and a Markdown block
between `<!-- generated: NAME -->` and `<!-- end: NAME -->` written over in place."""
import sys


def figures(lines, line_re):
    """{name: the line's named groups} of the lines `line_re` matches (the last line of a
    name wins)."""
    out = {}
    for line in lines:
        m = line_re.match(line.rstrip("\n"))
        if m:
            out[m.group("name")] = m.groupdict()
    return out


def markers(block):
    return "<!-- generated: %s -->" % block, "<!-- end: %s -->" % block


def read_block(path, block):
    """What the block of `path` holds now (the program stops if it has none)."""
    begin, end = markers(block)
    with open(path) as f:
        text = f.read()
    if begin not in text or end not in text:
        sys.exit("%s has no %s ... %s block" % (path, begin, end))
    return text.split(begin, 1)[1].split(end, 1)[0]


def write_block(path, block, body):
    """Replaces what is between the block's markers in `path` with `body`."""
    begin, end = markers(block)
    read_block(path, block)
    with open(path) as f:
        head, rest = f.read().split(begin, 1)
    tail = rest.split(end, 1)[1]
    with open(path, "w") as f:
        f.write(head + begin + body + end + tail)

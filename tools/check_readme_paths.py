#!/usr/bin/env python3
"""Every source file and folder README.md's "How a request travels" section
names (the tier diagram and the data-path table) exists in the tree.

The section is the map of the code; a rename that forgets it fails CI here
(.ci/run) instead of leaving a reader at a dead end. Exit 0 when every path
exists, 1 listing the missing ones.
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOP = r"(?:server|scheduler|worker|parallel|common|clients|proto|training|bench|tests|tools|deploy)"


def main() -> int:
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    start = text.index("## How a request travels")
    end = text.index("\n## ", start + 5)
    section = text[start:end]
    files = set(re.findall(r"`([A-Za-z0-9_./-]+\.(?:cc|h|proto|py|sh))`", section))
    files |= set(re.findall(r"\b(" + TOP + r"/[A-Za-z0-9_./-]+\.(?:cc|h|proto))", section))
    dirs = set(re.findall(r"`(" + TOP + r"/[A-Za-z0-9_/-]*/)`", section))
    missing = [p for p in sorted(files) if not os.path.isfile(os.path.join(ROOT, p))]
    missing += [d for d in sorted(dirs) if not os.path.isdir(os.path.join(ROOT, d))]
    print(f"readme paths: {len(files)} files and {len(dirs)} folders named in "
          f"'How a request travels'; missing: {', '.join(missing) or 'none'}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())

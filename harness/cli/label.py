"""`harness-label`: labels from people, for `labeler=file`.

    harness-label import FORMAT IN OUT.jsonl [--prompt KEY --left KEY --right KEY]

FORMAT is `label-studio` (a Label Studio export of the pairwise template), `arena`
(Chatbot-Arena-style battles) or `trl` (prompt / chosen / rejected rows); see
harness/labelers/importers.py. OUT is written whole or not at all, and never over an existing
file; then `harness labeler=file labeler.path=OUT.jsonl labeler@judge=<a panel>` trains on it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from harness.errors import InputError
from harness.labelers.file import read_comparisons
from harness.labelers.importers import FORMATS, import_comparisons, write_jsonl

PROG = "harness-label"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    imp = sub.add_parser("import", help="convert an export of another tool into labeler=file's JSONL")
    imp.add_argument("format", choices=FORMATS)
    imp.add_argument("source", metavar="IN", help="the export (a JSON list or JSONL)")
    imp.add_argument("out", metavar="OUT", help="the JSONL to write (must not exist)")
    imp.add_argument("--prompt", default="prompt", help="label-studio: the task data key of the prompt")
    imp.add_argument("--left", default="text1", help="label-studio: the task data key of the left text")
    imp.add_argument("--right", default="text2", help="label-studio: the task data key of the right text")
    return p


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        out = Path(args.out)
        if out.exists():
            raise InputError(f"{out}: exists; give a new file (an import never overwrites labels)")
        if not out.parent.is_dir():
            raise InputError(f"{out}: its directory {out.parent} does not exist")
        options = ({"prompt_key": args.prompt, "left": args.left, "right": args.right}
                   if args.format == "label-studio" else {})
        imported = import_comparisons(args.format, Path(args.source), **options)
        write_jsonl(imported.lines, out, check=read_comparisons)  # checked as labeler=file will read it
    except InputError as err:
        print(f"{PROG}: error: {' '.join(str(err).split())}", file=sys.stderr)
        sys.exit(2)
    skipped = "; skipped: " + ", ".join(f"{n} {why}" for why, n in imported.skipped.items()) if imported.skipped else ""
    print(f"{PROG}: {len(imported.lines)} comparisons from {args.source} written to {out}{skipped}")


if __name__ == "__main__":
    main()

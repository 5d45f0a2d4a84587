"""`harness-label`: labels from people, for `labeler=file`.

    harness-label serve QUEUE.jsonl LABELS.jsonl [--host 127.0.0.1] [--port 8765] [--annotators FILE]
    harness-label import FORMAT IN OUT.jsonl [--prompt KEY --left KEY --right KEY]

`serve` runs the labelling page (harness/labelers/page.py) over a queue of pending comparisons,
appending answers to LABELS (what `labeler=file` reads). On 127.0.0.1 (the default) no token is
needed; on any other address `--annotators` (a JSON object: name → token of ≥ 16 characters) is
required and each person comes in through their personal link, which the command prints.

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
    serve = sub.add_parser("serve", help="the labelling page over a queue of pending comparisons")
    serve.add_argument("queue", metavar="QUEUE", help="pending comparisons: JSONL of {id, prompt, responses}")
    serve.add_argument("labels", metavar="LABELS", help="the JSONL answers are appended to")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument("--annotators", help="JSON object of annotator name → personal token (required off loopback)")
    imp = sub.add_parser("import", help="convert an export of another tool into labeler=file's JSONL")
    imp.add_argument("format", choices=FORMATS)
    imp.add_argument("source", metavar="IN", help="the export (a JSON list or JSONL)")
    imp.add_argument("out", metavar="OUT", help="the JSONL to write (must not exist)")
    imp.add_argument("--prompt", default="prompt", help="label-studio: the task data key of the prompt")
    imp.add_argument("--left", default="text1", help="label-studio: the task data key of the left text")
    imp.add_argument("--right", default="text2", help="label-studio: the task data key of the right text")
    return p


def serve(args: argparse.Namespace) -> None:
    import uvicorn

    from harness.labelers.page import Labelling, create_app, is_loopback, read_annotators

    local = is_loopback(args.host)
    if not local and not args.annotators:
        raise InputError(f"--host {args.host}: off loopback every annotator needs a personal token; "
                         "give --annotators FILE (a JSON object: name → token)")
    tokens = read_annotators(Path(args.annotators)) if args.annotators else {}
    labelling = Labelling(Path(args.queue), Path(args.labels), tokens, require_token=not local)
    base = f"http://{args.host}:{args.port}/"
    print(f"{PROG}: {len(labelling.items)} comparisons from {args.queue}; answers go to {args.labels}", flush=True)
    if tokens:
        for token, name in tokens.items():
            print(f"  {name}: {base}?token={token}", flush=True)
    if local:
        print(f"  open {base}", flush=True)
    uvicorn.run(create_app(labelling), host=args.host, port=args.port, log_level="warning")


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    if args.command == "serve":
        try:
            serve(args)
        except InputError as err:
            print(f"{PROG}: error: {' '.join(str(err).split())}", file=sys.stderr)
            sys.exit(2)
        return
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

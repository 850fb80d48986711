"""``interpbook-build``: the book's build commands (a learner never needs them).

* ``interpbook-build export-solutions [--check]`` regenerates ``interpbook.solutions`` from the
  chapter pages (``--check`` fails if a module is out of date);
* ``interpbook-build notebooks PAGE.md`` writes a page's exercise and solution notebooks.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _cmd_export(args: argparse.Namespace) -> int:
    from interpbook_build.export import export_all

    changed = export_all(Path(args.repo), check=args.check)
    for name in changed:
        print(("stale: " if args.check else "wrote: ") + name)
    if args.check and changed:
        print("Run `interpbook-build export-solutions` and commit the result.", file=sys.stderr)
    return 1 if (args.check and changed) else 0


def _cmd_notebooks(args: argparse.Namespace) -> int:
    from interpbook_build.config import build_commit, repo_url
    from interpbook_build.notebooks import write_notebooks

    md = Path(args.page)
    try:
        docname = md.resolve().relative_to(Path(args.repo).resolve()).with_suffix("").as_posix()
    except ValueError:
        docname = md.with_suffix("").as_posix()
    url = args.repo_url or repo_url(args.repo)
    for p in write_notebooks(md, args.out, docname, url, args.cache, ref=build_commit(args.repo)):
        print(p)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="interpbook-build", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("export-solutions", help="regenerate interpbook/solutions from the chapter pages")
    p.add_argument("--repo", default=".", help="repository root")
    p.add_argument("--check", action="store_true", help="fail if a module is out of date")
    p.set_defaults(func=_cmd_export)
    p = sub.add_parser("notebooks", help="write a page's exercise and solution notebooks")
    p.add_argument("page", help="a chapter page, e.g. book/chapters/induction/02-finding-induction-heads.md")
    p.add_argument("--out", default="_build/notebooks")
    p.add_argument("--repo", default=".", help="repository root (its _config.yml names the repository URL)")
    p.add_argument("--cache", default="_build/.jupyter_cache", help="execution cache to take glued values from")
    p.add_argument("--repo-url", default=None, help="override repository.url from _config.yml")
    p.set_defaults(func=_cmd_notebooks)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

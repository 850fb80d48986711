"""Command line: ``interpbook models`` lists the zoo, ``interpbook train NAME`` regenerates a
book-trained checkpoint. (Build commands live in ``interpbook-build``, a separate package.)"""

from __future__ import annotations

import argparse
import importlib
import sys
import time


def _cmd_models(_: argparse.Namespace) -> int:
    from interpbook.zoo.registry import model_names, spec

    for name in model_names():
        s = spec(name)
        hub = f"  [full profile: {s.hub_name}]" if s.hub_name else ""
        print(f"{name:24s} {s.description}{hub}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from interpbook.zoo.registry import spec

    s = spec(args.name)
    if s.trainer is None:
        print(f"Model {args.name!r} has no training recipe in this package.", file=sys.stderr)
        return 2
    module_name, _, func = s.trainer.partition(":")
    train = getattr(importlib.import_module(module_name), func or "train")
    start = time.perf_counter()
    train(args.name, device=args.device)
    print(f"trained {args.name} in {time.perf_counter() - start:.0f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="interpbook", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("models", help="list the model zoo").set_defaults(func=_cmd_models)
    p = sub.add_parser("train", help="regenerate a book-trained checkpoint deterministically")
    p.add_argument("name")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.set_defaults(func=_cmd_train)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

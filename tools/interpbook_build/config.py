"""What the build reads from the repository: the URL in ``_config.yml`` (the one place it
lives) and the commit the notebooks are built from."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

COMMIT_ENV = "INTERP_BOOK_COMMIT"


def repo_url(repo_root: str | Path) -> str:
    """``repository.url`` from ``<repo_root>/_config.yml``, without a trailing slash."""
    import yaml

    path = Path(repo_root) / "_config.yml"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run this from the repository root or pass --repo.")
    url = ((yaml.safe_load(path.read_text()) or {}).get("repository") or {}).get("url", "")
    if not url:
        raise ValueError(f"{path}: set repository.url; Colab badges and setup cells need it.")
    return str(url).rstrip("/")


def build_commit(repo_root: str | Path) -> str | None:
    """The commit the site and notebooks are built from: ``$INTERP_BOOK_COMMIT``, else the
    checkout's ``HEAD``; None outside a git checkout."""
    env = os.environ.get(COMMIT_ENV, "").strip()
    if env:
        return env
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo_root, capture_output=True, text=True,
                             check=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    sha = out.stdout.strip()
    return sha or None

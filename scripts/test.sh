#!/usr/bin/env bash
# Run the whole test suite: lint, package unit tests, exercises (every check fails on its stub
# and passes on its solution), generated notebooks (nbval), and browser tests of the built site
# in headless Chromium. Builds the site first (cached pages are not re-executed).
set -eo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure_env.sh
if ! command -v chromium >/dev/null 2>&1; then
  echo "==> installing Debian's chromium for the browser tests"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
bash scripts/build.sh
export PATH="$PWD/.venv/bin:$PATH" INTERP_BOOK_PROFILE=default TOKENIZERS_PARALLELISM=false
# Two test workers on two cores: one math thread each (inherited by the kernels that run the
# pages), rather than two workers each asking for every core.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
python -m pytest -n 2 --dist loadgroup tests "$@"

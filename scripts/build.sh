#!/usr/bin/env bash
# Build the site: set up .venv with the pinned requirements, execute every page offline, and
# write HTML to _build/html. Pages whose code did not change come from the execution cache.
#
#   bash scripts/build.sh                  # the whole book
#   bash scripts/build.sh PAGE.md          # one page only (fast preview), into _build/page/
#   INTERP_BOOK_PROFILE=full bash scripts/build.sh   # hub models (network + GPU)
set -eo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure_env.sh
export PATH="$PWD/.venv/bin:$PATH"
export INTERP_BOOK_PROFILE="${INTERP_BOOK_PROFILE:-default}"
.venv/bin/python -c "from interpbook.profiles import current_profile; current_profile()"
export MPLBACKEND=Agg TQDM_DISABLE=1 TOKENIZERS_PARALLELISM=false

start=$(date +%s)
if [ -n "${1:-}" ]; then
  page="$1"
  [ -f "$page" ] || { echo "No such page: $page" >&2; exit 2; }
  name=$(basename "${page%.md}")
  out="_build/page/$name"
  rm -rf "$out"
  mkdir -p "$out"
  # A one-page book with the same configuration and extensions (its own output folder, so
  # several pages can be previewed at once; the execution cache is shared).
  printf 'format: jb-book\nroot: %s\n' "${page%.md}" > "$out/_toc.yml"
  jupyter-book build . --toc "$out/_toc.yml" --path-output "$out" --warningiserror --keep-going
  echo "Page built in $(( $(date +%s) - start )) s: $out/_build/html/${page%.md}.html"
  exit 0
fi

log=_build/build.log
mkdir -p _build
rm -rf _build/html.failed
if ! jupyter-book build . --warningiserror --nitpick --keep-going 2>&1 | tee "$log"; then
  # Never leave a half-built site where tests or the publish step would pick it up.
  [ -d _build/html ] && mv _build/html _build/html.failed
  echo >&2
  echo "BUILD FAILED after $(( $(date +%s) - start )) s. The first errors:" >&2
  # Kernel start-up chatter and pip's notes about local indexes are not what broke the build.
  grep -nE "(ERROR|WARNING|Error|Traceback|CellExecutionError)" "$log" \
    | grep -vE "\[IPKernelApp\] WARNING|WARNING: Location 'file://.*' is ignored" | head -n 20 >&2 || true
  echo "Full log: $log. Executed-cell tracebacks: _build/html.failed/reports/ (if any)." >&2
  exit 1
fi
if grep -q "Executed notebook in" "$log"; then
  echo "Pages executed this build (the rest came from the cache):"
  sed -nE 's|^.*/(book/[^:]+): Executed notebook in ([0-9.]+) seconds.*|  \2 s  \1|p' "$log"
fi
echo "Site built in $(( $(date +%s) - start )) s (profile: $INTERP_BOOK_PROFILE): $PWD/_build/html/index.html"
echo "Preview: .venv/bin/python -m http.server -d _build/html 8000"

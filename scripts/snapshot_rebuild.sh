#!/usr/bin/env bash
# Copy a running (or stopped) `portfolio build-default` output folder into portfolio/rebuild/ of this
# checkout, so that its results so far can be committed while the build goes on elsewhere (a
# separate clone at a fixed commit, README "The default, rebuilt"). Left out: the BOHB runs' worker
# logs, hpbandster working folders and nameserver files (.gitignore). Kept: portfolio/rebuild/README.md
# and portfolio/rebuild/preview-* (measurements made on a snapshot, not by the build). Absolute
# paths of the build's clone (and of any earlier clone named after it, from which the build was
# moved on) are made repository-relative: artifacts name paths relative to the repository (older
# commits wrote a BOHB run's space and tracebacks' source files absolute). The selector
# comparison's measurements kept so far (OUT/work/selection-parts/) go to
# portfolio/rebuild/selection-parts/. Then: git add -A portfolio/rebuild && git commit.
#
#   scripts/snapshot_rebuild.sh /path/to/clone/portfolio/default [/path/to/an/earlier/clone ...]
set -euo pipefail
src=${1:?usage: scripts/snapshot_rebuild.sh BUILD_OUTPUT_FOLDER [EARLIER_CLONE ...]}
shift
[ -f "$src/manifest.json" ] || { echo "snapshot_rebuild: $src/manifest.json not found: not a build output folder" >&2; exit 2; }
dest="$(git rev-parse --show-toplevel)/portfolio/rebuild"
mkdir -p "$dest"
readme=$(mktemp)
[ -f "$dest/README.md" ] && cp "$dest/README.md" "$readme"
find "$dest" -mindepth 1 -maxdepth 1 ! -name README.md ! -name 'preview-*' -exec rm -rf {} +
(cd "$src" && tar cf - --exclude='*/logs' --exclude='*/work' --exclude='nameserver-*.json' .) | (cd "$dest" && tar xf -)
# the selector comparison's measurements so far (a build stopped during its comparison resumes from
# them once they are copied back to OUT/work/selection-parts/; each is named by its inputs' digest)
if [ -d "$src/work/selection-parts" ]; then
  mkdir -p "$dest/selection-parts" && cp "$src"/work/selection-parts/*.json "$dest/selection-parts/" 2>/dev/null || true
fi
roots=("$(git -C "$src" rev-parse --show-toplevel)" "$@")
for root in "${roots[@]}"; do
  root=${root%/}
  { grep -rlF --include='*.json' --include='*.jsonl' --include='*.md' --include='*.csv' "$root/" "$dest" || true; } \
    | while read -r f; do sed -i "s#${root}/##g" "$f"; done
done
[ -s "$readme" ] && cp "$readme" "$dest/README.md"
rm -f "$readme"
cells=$( [ -f "$dest/pool/cells.jsonl" ] && wc -l < "$dest/pool/cells.jsonl" || echo 0)
echo "portfolio/rebuild: snapshot of $src ($cells pool-matrix cells)"

#!/usr/bin/env bash
# build-deb.sh — builds the validora .deb: copies the source tree (what git tracks, plus new
# files it does not ignore; no build directories) to a temporary directory, puts
# contrib/debian there as debian/, runs `dpkg-buildpackage -b -uc -us` and moves the .deb
# (with its .buildinfo and .changes) to OUTDIR. The tree itself is left as it was.
# Usage: bash contrib/build-deb.sh OUTDIR
# Needs: contrib/deps.sh --all (build packages, debhelper, dpkg-dev, fakeroot).
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: bash contrib/build-deb.sh OUTDIR" >&2; exit 2; }
top=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$1"
out=$(cd "$1" && pwd)

# One version: the project's (CMakeLists.txt) is the package's (debian/changelog).
project=$(sed -n 's/^project(validora VERSION \([0-9.]*\).*/\1/p' "$top/CMakeLists.txt")
package=$(dpkg-parsechangelog -l "$top/contrib/debian/changelog" -S Version)
if [ "$project" != "$package" ]; then
  echo "build-deb.sh: CMakeLists.txt says version $project, contrib/debian/changelog $package:" \
       "add a changelog entry (dch -v $project)" >&2
  exit 1
fi

tmp=$(mktemp -d /tmp/validora-deb.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
src="$tmp/validora-$project"
mkdir "$src"
if git -C "$top" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  # Files deleted in the work tree but still tracked are skipped.
  (cd "$top" && git ls-files -z --cached --others --exclude-standard |
     xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
     tar --null -T - -cf -) | tar -C "$src" -xf -
else
  tar -C "$top" --exclude='./build*' --exclude=./debian -cf - . | tar -C "$src" -xf -
fi
[ ! -e "$src/debian" ] || { echo "build-deb.sh: the tree has a debian/ of its own; the packaging is contrib/debian" >&2; exit 1; }
cp -r "$top/contrib/debian" "$src/debian"

export DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:-parallel=2}"
(cd "$src" && dpkg-buildpackage -b -uc -us) >"$tmp/build.log" 2>&1 || {
  tail -60 "$tmp/build.log" >&2
  echo "build-deb.sh: dpkg-buildpackage failed (the log's tail is above)" >&2
  exit 1
}
shopt -s nullglob
debs=("$tmp"/validora_*.deb)
[ ${#debs[@]} -gt 0 ] || { echo "build-deb.sh: dpkg-buildpackage made no .deb" >&2; exit 1; }
mv "${debs[@]}" "$tmp"/validora_*.buildinfo "$tmp"/validora_*.changes "$out"/
cp "$tmp/build.log" "$out/validora-build.log"
for d in "${debs[@]}"; do echo "$out/$(basename "$d")"; done

#!/usr/bin/env bash
# Cross-builds kdsrv, kdclient, kdtarget and kdbench for the release
# platforms with the version stamped in, and writes SHA-256 sums.
#
#   scripts/release.sh [VERSION] [OUTDIR]
#
# VERSION defaults to `git describe --tags --always --dirty` (or "dev"
# outside a git checkout); OUTDIR to dist/VERSION. Each platform gets a
# directory of binaries (dist/VERSION/kdsrv_VERSION_linux_amd64/...) and
# the sums go to dist/VERSION/SHA256SUMS, checkable with
#   (cd dist/VERSION && sha256sum -c SHA256SUMS)
# PLATFORMS="linux/amd64" limits the build (a quick check).
# The binaries are static (CGO_ENABLED=0) and reproducible (-trimpath,
# no build id).
set -euo pipefail
cd "$(dirname "$0")/.."

version=${1:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
out=${2:-dist/$version}
commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
case "$version" in
	*[!A-Za-z0-9._+-]*) echo "release.sh: version '$version' may only hold letters, digits and . _ + -" >&2; exit 2 ;;
esac

platforms=${PLATFORMS:-"linux/amd64 linux/arm64 windows/amd64 darwin/arm64"}
programs="kdsrv kdclient kdtarget kdbench"
ldflags="-s -w -buildid= -X kdsrv/internal/version.Version=$version -X kdsrv/internal/version.Commit=$commit"

rm -rf "$out"
mkdir -p "$out"
for p in $platforms; do
	goos=${p%/*} goarch=${p#*/}
	dir="$out/kdsrv_${version}_${goos}_${goarch}"
	mkdir -p "$dir"
	ext=
	[ "$goos" = windows ] && ext=.exe
	for prog in $programs; do
		echo "building $prog for $goos/$goarch"
		CGO_ENABLED=0 GOOS=$goos GOARCH=$goarch go build -trimpath -ldflags "$ldflags" -o "$dir/$prog$ext" "./cmd/$prog"
	done
	cp LICENSE README.md "$dir/"
done

(
	cd "$out"
	find . -type f ! -name SHA256SUMS | sed 's|^\./||' | LC_ALL=C sort | xargs sha256sum >SHA256SUMS
)
echo "release $version ($commit) in $out; sums in $out/SHA256SUMS"

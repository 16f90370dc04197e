#!/usr/bin/env bash
# vm-initramfs.sh OUT [GOARCH] — build an initramfs whose /init is a static
# kdtarget, to boot as the "kernel" of a Linux VM and debug it on the VM's
# serial port (docs/setups.md, QEMU). GOARCH defaults to amd64 (a
# qemu-system-x86_64 guest). The kdtarget arguments come from the kernel
# command line after "--", for example:
#   qemu-system-x86_64 -m 256M -nographic -kernel /boot/vmlinuz-... -initrd OUT \
#     -append 'console=ttyS0 -- -listen serial:/dev/ttyS0' \
#     -serial unix:/tmp/vm.sock,server=on,wait=off
set -euo pipefail
if [ $# -lt 1 ] || [ $# -gt 2 ] || [ "${1:-}" = -h ]; then
	echo "usage: $0 OUT.cpio.gz [GOARCH]" >&2
	exit 2
fi
out=$1
arch=${2:-amd64}
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
CGO_ENABLED=0 GOOS=linux GOARCH="$arch" go build -trimpath -ldflags='-s -w' -o "$tmp/kdtarget" ./cmd/kdtarget
case "$out" in /*) ;; *) out="$OLDPWD/$out" ;; esac
go run ./internal/initramfs/mkinitramfs -init "$tmp/kdtarget" -o "$out"
echo "$out: initramfs with kdtarget as /init ($(du -h "$out" | cut -f1))"

#!/bin/sh
# Builds the pause binary that package cri embeds (cri/pause/pause, generated and
# gitignored). The Makefile runs this before any go build or test of the module.
set -eu
cd "$(dirname "$0")"
CC="${CC:-gcc}"
out=pause
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
"$CC" -Os -static -nostdlib -nostartfiles -fno-stack-protector -fno-asynchronous-unwind-tables \
	-ffreestanding -Wall -Wextra -Werror -Wl,--build-id=none -s -o "$tmp" pause.c
mv "$tmp" "$out"

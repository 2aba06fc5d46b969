#!/usr/bin/env bash
# build.sh OUTDIR [IMAGE...]
#
# Builds the test images as OCI image layouts under OUTDIR (OUTDIR/nginx, OUTDIR/busybox)
# from Debian packages. Only Debian's apt mirror is needed: packages are fetched with
# `apt-get download` (no install on the host), unpacked with `dpkg -x` into a rootfs, and
# packed by mkimage. An image whose layout is newer than this script and mkimage is skipped.
#
# Needs root (to keep file owners) and apt lists (`apt-get update` once).
# Environment: SOURCE_DATE_EPOCH (default 0) stamps every file; SKIFF_IMAGES_CACHE is where
# .debs and rootfs trees are kept (default OUTDIR/.cache).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
[[ $# -ge 1 ]] || { echo "usage: $0 OUTDIR [nginx|busybox]..." >&2; exit 2; }
out=$(realpath -m "$1"); shift
images=("$@"); [[ ${#images[@]} -gt 0 ]] || images=(nginx busybox)
cache=${SKIFF_IMAGES_CACHE:-$out/.cache}
debs=$cache/debs
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-0}

log() { echo "build.sh: $*" >&2; }

# up_to_date NAME: the layout exists and is newer than everything it is built from.
up_to_date() {
	local index=$out/$1/index.json src
	[[ -f $index ]] || return 1
	for src in "$here/build.sh" "$here"/mkimage/*.go; do
		[[ $index -nt $src ]] || return 1
	done
}

# closure PKG...: the packages plus every shared-library package (Section: libs) they
# (pre-)depend on, transitively. Other dependencies (debconf, iproute2, init-system-helpers,
# gcc-12-base...) serve maintainer scripts and tools that a container does not have.
closure() {
	local -A seen=()
	local queue=("$@") p d
	while ((${#queue[@]})); do
		p=${queue[0]}; queue=("${queue[@]:1}")
		[[ -n ${seen[$p]:-} ]] && continue
		seen[$p]=1
		while read -r d; do
			[[ -z ${seen[$d]:-} && $(section "$d") == libs ]] && queue+=("$d")
		done < <(apt-cache depends --no-recommends --no-suggests --no-conflicts \
			--no-breaks --no-replaces --no-enhances "$p" |
			awk '$1 ~ /^\|?(Pre)?Depends:$/ && $2 !~ /^</ {print $2}')
	done
	printf '%s\n' "${!seen[@]}" | sort
}

# section PKG: the archive section of the candidate version, without its area prefix.
section() {
	apt-cache show --no-all-versions "$1" 2>/dev/null | awk -F': ' '$1 == "Section" {sub(/.*\//, "", $2); print $2; exit}'
}

# fetch PKG...: download the packages' .debs (candidate versions) into the cache. A cached
# .deb is reused; remove the cache to pick up newer package versions.
fetch() {
	mkdir -p "$debs"
	local missing=() p
	for p in "$@"; do
		compgen -G "$debs/${p}_*.deb" >/dev/null || missing+=("$p")
	done
	if ((${#missing[@]})); then
		log "downloading ${missing[*]}"
		# The _apt sandbox user cannot write into a root-owned cache; download as root.
		(cd "$debs" && apt-get download -q -o APT::Sandbox::User=root "${missing[@]}" >&2)
	fi
}

# unpack ROOTFS PKG...: a fresh rootfs with the packages' files in it.
unpack() {
	local rootfs=$1 p deb; shift
	rm -rf "$rootfs"; mkdir -p "$rootfs"
	for p in "$@"; do
		deb=$(printf '%s\n' "$debs/${p}"_*.deb | sort -V | tail -n1)
		dpkg -x "$deb" "$rootfs"
		# shellcheck disable=SC2016 # dpkg-deb expands the ${...} fields itself
		dpkg-deb --show --showformat='${Package}=${Version}\n' "$deb" >>"$rootfs.packages"
	done
}

# base_files ROOTFS: what every image needs from a base system and no package provides here.
base_files() {
	local r=$1
	mkdir -p "$r"/{etc,root,tmp,run,proc,sys,dev,var/tmp}
	chmod 1777 "$r/tmp" "$r/var/tmp"
	chmod 700 "$r/root"
	cat >"$r/etc/passwd" <<-'P'
	root:x:0:0:root:/root:/bin/sh
	www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin
	nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
	P
	cat >"$r/etc/group" <<-'G'
	root:x:0:
	www-data:x:33:
	nogroup:x:65534:
	G
	printf 'passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n' >"$r/etc/nsswitch.conf"
	: >"$r/etc/hosts"; : >"$r/etc/resolv.conf"
	printf 'NAME="skiff test image"\nID=debian\n' >"$r/etc/os-release"
}

# link_applets ROOTFS: hard-link every busybox applet that is not already a file, so that
# `sh -c ls` execs /bin/ls.
link_applets() {
	local r=$1 applet
	while read -r applet; do
		[[ -e $r/$applet || -L $r/$applet ]] && continue
		mkdir -p "$(dirname "$r/$applet")"
		ln "$r/bin/busybox" "$r/$applet"
	done < <(chroot "$r" /bin/busybox --list-full)
}

# check_libs ROOTFS BIN...: every binary's shared libraries resolve inside the rootfs.
check_libs() {
	local r=$1 b msg; shift
	for b in "$@"; do
		msg=$(chroot "$r" "$b" --version 2>&1 || true)
		if [[ $msg == *"error while loading shared libraries"* ]]; then
			log "$b: $msg"; return 1
		fi
	done
}

# smoke_nginx ROOTFS: nginx starts from the rootfs in throwaway namespaces (so nothing it
# mounts or binds reaches the host) and answers GET / with Debian's welcome page.
smoke_nginx() {
	[[ ${SKIFF_IMAGES_SMOKE:-1} == 1 ]] || return 0
	local body
	local scratch
	scratch=$(mktemp -d)
	# nginx writes its pid file and temp dirs: run it on an overlay so the rootfs stays clean.
	# shellcheck disable=SC2016 # the inner script expands its own variables
	body=$(unshare --mount --net --pid --fork --kill-child --propagation private bash -ec '
		s=$2 r=$2/merged
		mkdir -p "$s/upper" "$s/work" "$r"
		mount -t overlay overlay -o "lowerdir=$1,upperdir=$s/upper,workdir=$s/work" "$r"
		ip link set lo up
		mount -t proc proc "$r/proc"
		mount --bind /dev "$r/dev"
		chroot "$r" /usr/sbin/nginx -g "daemon off;" >/dev/null 2>&1 &
		for i in $(seq 50); do
			if exec 3<>/dev/tcp/127.0.0.1/80; then
				printf "GET / HTTP/1.0\r\nHost: localhost\r\n\r\n" >&3
				cat <&3
				exit 0
			fi 2>/dev/null
			sleep 0.1
		done
		exit 1
	' bash "$1" "$scratch") || { rm -rf "$scratch"; log "nginx smoke test: no answer"; return 1; }
	rm -rf "$scratch"
	[[ $body == *"Welcome to nginx!"* ]] || { log "nginx smoke test: unexpected page: $body"; return 1; }
	log "nginx smoke test: GET / answered with the welcome page"
}

mkimage() {
	local name=$1 rootfs=$2 ref=$3 config=$4
	(cd "$repo" && CGO_ENABLED=0 go build -o "$cache/mkimage" ./test/images/mkimage)
	"$cache/mkimage" --rootfs "$rootfs" --config "$config" --ref "$ref" --out "$out/$name"
	cp "$rootfs.packages" "$out/$name/packages.txt"
	log "built $out/$name ($(wc -l <"$rootfs.packages") packages)"
}

build_nginx() {
	local rootfs=$cache/rootfs/nginx pkgs
	# busybox gives the image a shell and the usual tools, as the official image has, for
	# `kubectl exec` and exec probes.
	mapfile -t pkgs < <(closure nginx nginx-common busybox)
	fetch "${pkgs[@]}"
	rm -f "$rootfs.packages"
	unpack "$rootfs" "${pkgs[@]}"
	base_files "$rootfs"
	local r=$rootfs
	# What nginx-common's maintainer scripts would do: the default site and its page.
	mkdir -p "$r/var/www/html" "$r/etc/nginx/sites-enabled" "$r/var/lib/nginx" "$r/var/log/nginx"
	cp "$r/usr/share/nginx/html/index.html" "$r/var/www/html/index.nginx-debian.html"
	ln -sfn /etc/nginx/sites-available/default "$r/etc/nginx/sites-enabled/default"
	chown www-data:www-data "$r/var/lib/nginx" 2>/dev/null || chown 33:33 "$r/var/lib/nginx"
	# Logs go to the container's stdout/stderr, as in the official image.
	ln -sfn /dev/stdout "$r/var/log/nginx/access.log"
	ln -sfn /dev/stderr "$r/var/log/nginx/error.log"
	link_applets "$r"
	check_libs "$r" /usr/sbin/nginx /bin/busybox
	smoke_nginx "$r"
	cat >"$cache/nginx.json" <<-'J'
	{
	  "Entrypoint": ["nginx", "-g", "daemon off;"],
	  "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
	  "ExposedPorts": {"80/tcp": {}},
	  "StopSignal": "SIGQUIT",
	  "Labels": {"org.opencontainers.image.description": "Debian's nginx, built offline by skiff test/images"}
	}
	J
	mkimage nginx "$rootfs" nginx:latest "$cache/nginx.json"
}

build_busybox() {
	local rootfs=$cache/rootfs/busybox pkgs extra
	# procps and util-linux are unpacked aside only for pgrep and ipcs (critest uses both
	# and Debian's busybox has neither); their libraries come with the closure.
	mapfile -t pkgs < <(closure busybox libproc2-0)
	fetch "${pkgs[@]}" procps util-linux
	rm -f "$rootfs.packages"
	unpack "$rootfs" "${pkgs[@]}"
	base_files "$rootfs"
	extra=$cache/rootfs/busybox-extra
	rm -f "$extra.packages"
	unpack "$extra" procps util-linux
	install -D -m 0755 "$extra/usr/bin/pgrep" "$rootfs/usr/bin/pgrep"
	install -D -m 0755 "$extra/usr/bin/ipcs" "$rootfs/usr/bin/ipcs"
	cat "$extra.packages" >>"$rootfs.packages"
	link_applets "$rootfs"
	check_libs "$rootfs" /bin/busybox /usr/bin/pgrep /usr/bin/ipcs
	chroot "$rootfs" /bin/sh -c 'ls /bin/ls && pgrep --version && ipcs --version' >/dev/null
	cat >"$cache/busybox.json" <<-'J'
	{
	  "Cmd": ["sh"],
	  "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
	}
	J
	mkimage busybox "$rootfs" busybox:latest "$cache/busybox.json"
}

[[ $(id -u) == 0 ]] || { log "must run as root (file owners, chroot, namespaces)"; exit 1; }
for tool in apt-get apt-cache dpkg-deb chroot unshare ip go; do
	command -v "$tool" >/dev/null || { log "needs $tool"; exit 1; }
done
mkdir -p "$out" "$cache/rootfs"
for img in "${images[@]}"; do
	if up_to_date "$img"; then
		log "$img is up to date"
		continue
	fi
	case $img in
	nginx | busybox)
		# A fresh machine has no package lists yet.
		apt-cache show --no-all-versions "$img" >/dev/null 2>&1 || apt-get update -q >&2
		;;&
	nginx) build_nginx ;;
	busybox) build_busybox ;;
	*) log "unknown image $img"; exit 2 ;;
	esac
done

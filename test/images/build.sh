#!/usr/bin/env bash
# build.sh OUTDIR [IMAGE...]
#
# Builds the test images as OCI image layouts under OUTDIR (OUTDIR/nginx, OUTDIR/busybox)
# from Debian packages; `critest` adds the stand-ins of the images critest pulls under
# OUTDIR/critest (see README.md). Only Debian's apt mirror is needed: packages are fetched with
# `apt-get download` (no install on the host), unpacked with `dpkg -x` into a rootfs, and
# packed by mkimage. An image whose layout is newer than this script and mkimage is skipped.
#
# Needs root (to keep file owners) and apt lists (`apt-get update` once).
# Environment: SOURCE_DATE_EPOCH (default 0) stamps every file; SKIFF_IMAGES_CACHE is where
# .debs and rootfs trees are kept (default OUTDIR/.cache).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
[[ $# -ge 1 ]] || { echo "usage: $0 OUTDIR [nginx|busybox|critest]..." >&2; exit 2; }
out=$(realpath -m "$1"); shift
images=("$@"); [[ ${#images[@]} -gt 0 ]] || images=(nginx busybox)
cache=${SKIFF_IMAGES_CACHE:-$out/.cache}
debs=$cache/debs
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-0}

log() { echo "build.sh: $*" >&2; }

# up_to_date NAME: the layout exists and is newer than everything it is built from.
up_to_date() {
	local index=$out/$1/index.json src
	# The critest set is many layouts; its list of references is written last.
	[[ $1 == critest ]] && index=$out/critest/images.txt
	[[ -f $index ]] || return 1
	local srcs=("$here/build.sh" "$here"/mkimage/*.go)
	if [[ $1 == critest ]]; then
		# Its stand-ins are variants of busybox and nginx: rebuilt when those are.
		[[ -f $out/busybox/index.json && -f $out/nginx/index.json ]] || return 1
		srcs+=("$here"/nnp/*.go "$repo/cri/pause/pause.c" "$out/busybox/index.json" "$out/nginx/index.json")
	fi
	for src in "${srcs[@]}"; do
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

# variant NAME BASE: a fresh copy of the BASE image's rootfs for the critest stand-in NAME;
# prints its path. The copy keeps BASE's package list.
variant() {
	local r=$cache/rootfs/critest-$1
	rm -rf "$r"
	cp -a "$cache/rootfs/$2" "$r"
	cp "$cache/rootfs/$2.packages" "$r.packages"
	echo "$r"
}

# image_config FILE [KEY=JSON...]: an image config with busybox's PATH plus the given keys.
image_config() {
	local f=$1 kv sep='' body=''
	shift
	for kv in "$@"; do
		body+="$sep  \"${kv%%=*}\": ${kv#*=}"
		sep=$',\n'
	done
	printf '{\n  "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]%s\n}\n' \
		"${body:+,$'\n'$body}" >"$f"
}

# build_critest: stand-ins for every image critest v1.37.0 pulls (pkg/validate and
# pkg/framework of sigs.k8s.io/cri-tools; its images/ folder says what each contains), under
# the upstream names, and OUTDIR/critest/images.txt listing REF=LAYOUT for test/registry.
# The digest-pinned test-image-digest cannot be rebuilt to the same digest and is left out.
build_critest() {
	local c=$out/critest cfg=$cache/critest r arch refs=()
	rm -rf "$c" && mkdir -p "$c" "$cfg"
	arch=$(go env GOARCH)
	# add REF LAYOUT: one line of images.txt.
	add() { refs+=("$1=$2"); }
	# pack NAME ROOTFS CONFIG: mkimage into OUTDIR/critest/NAME.
	pack() { mkimage "critest/$1" "$2" "$1:latest" "$3"; }

	# The e2e busybox is the busybox image itself; the pods' pause image is skiff's own
	# pause program, under the tag critest pulls (3.9) and the one skiff and containerd's
	# sandbox_image use (3.10). k8s.gcr.io/pause:3.9 is the same path, mirrored by the caller.
	add registry.k8s.io/e2e-test-images/busybox:1.29-2 "$out/busybox"
	[[ -x $repo/cri/pause/pause && $repo/cri/pause/pause -nt $repo/cri/pause/pause.c ]] ||
		"$repo/cri/pause/build.sh"
	r=$cache/rootfs/critest-pause
	rm -rf "$r" && mkdir -p "$r" && : >"$r.packages"
	install -m 0755 "$repo/cri/pause/pause" "$r/pause"
	# Upstream's 3.9 and 3.10 are different images (critest counts the tags of 3.9's image);
	# the version label tells ours apart.
	local v
	for v in 3.9 3.10; do
		printf '{"Entrypoint": ["/pause"], "User": "65535:65535", "Labels": {"org.opencontainers.image.version": "%s"}}\n' \
			"$v" >"$cfg/pause-$v.json"
		pack "pause-$v" "$r" "$cfg/pause-$v.json"
		add "registry.k8s.io/pause:$v" "$c/pause-$v"
	done

	# e2e nginx: the nginx image with /var/run, where critest waits for nginx.pid.
	r=$(variant nginx nginx)
	ln -sfn /run "$r/var/run"
	cp "$cache/nginx.json" "$cfg/nginx.json"
	pack nginx "$r" "$cfg/nginx.json"
	add registry.k8s.io/e2e-test-images/nginx:1.14-2 "$c/nginx"

	# hostnet-nginx serves its page on 12003 (cri-tools images/hostnet-nginx/default.conf).
	r=$(variant hostnet-nginx nginx)
	rm "$r/etc/nginx/sites-enabled/default"
	cat >"$r/etc/nginx/sites-enabled/hostnet" <<-'C'
	server {
		listen 12003;
		server_name localhost;
		root /var/www/html;
		index index.html index.htm index.nginx-debian.html;
	}
	C
	pack hostnet-nginx "$r" "$cache/nginx.json"
	add "gcr.io/k8s-staging-cri-tools/hostnet-nginx-$arch:latest" "$c/hostnet-nginx"

	# httpd: busybox's httpd in the foreground (the specs need a long-running server that
	# can exec echo and logs "httpd").
	r=$(variant httpd busybox)
	mkdir -p "$r/var/www"
	echo '<html><body><h1>It works!</h1></body></html>' >"$r/var/www/index.html"
	# Like Apache's startup notice, it logs a line naming httpd (critest looks for it).
	image_config "$cfg/httpd.json" \
		'Cmd=["sh", "-c", "echo \"httpd: serving /var/www on port 80\" >&2; exec httpd -f -v -p 80 -h /var/www"]' \
		'ExposedPorts={"80/tcp": {}}'
	pack httpd "$r" "$cfg/httpd.json"
	add registry.k8s.io/e2e-test-images/httpd:2.4.39-4 "$c/httpd"

	# nonewprivs: a setuid-root program printing its effective UID, run as user 1000.
	r=$(variant nonewprivs busybox)
	mkdir -p "$r/usr/local/bin"
	(cd "$repo" && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$r/usr/local/bin/nnp" ./test/images/nnp)
	chown 0:0 "$r/usr/local/bin/nnp"
	chmod 4755 "$r/usr/local/bin/nnp"
	image_config "$cfg/nonewprivs.json" 'Entrypoint=["/usr/local/bin/nnp"]' 'User="1000"'
	pack nonewprivs "$r" "$cfg/nonewprivs.json"
	add registry.k8s.io/e2e-test-images/nonewprivs:1.3 "$c/nonewprivs"

	# test-image-*: busybox plus an empty file named after the image (images/image-test),
	# so that each is a different image; test-image-tags:1/2/3 are one image.
	local n reg=gcr.io/k8s-staging-cri-tools
	for n in test-image-1 test-image-2 test-image-3 test-image-latest test-image-tags; do
		r=$(variant "$n" busybox)
		if [[ $n == test-image-tags ]]; then : >"$r/same-image"; else : >"$r/$n"; fi
		image_config "$cfg/$n.json" 'Cmd=["sh"]'
		pack "$n" "$r" "$cfg/$n.json"
	done
	add "$reg/test-image-1:latest" "$c/test-image-1"
	add "$reg/test-image-2:latest" "$c/test-image-2"
	add "$reg/test-image-3:latest" "$c/test-image-3"
	add "$reg/test-image-latest:latest" "$c/test-image-latest"
	for n in 1 2 3; do add "$reg/test-image-tags:$n" "$c/test-image-tags"; done
	for n in test all; do
		r=$(variant "test-image-tag-$n" busybox)
		: >"$r/$n"
		image_config "$cfg/tag-$n.json" 'Cmd=["sh"]'
		pack "test-image-tag-$n" "$r" "$cfg/tag-$n.json"
		add "$reg/test-image-tag:$n" "$c/test-image-tag-$n"
	done

	# test-image-user-*: busybox with USER set (images/build's IMAGE_USERS).
	local -A users=([uid]=1002 [username]=www-data [uid-group]=1003:1004 [username-group]=www-data:1004)
	r=$(variant user busybox)
	for n in "${!users[@]}"; do
		image_config "$cfg/user-$n.json" 'Cmd=["sh"]' "User=\"${users[$n]}\""
		pack "test-image-user-$n" "$r" "$cfg/user-$n.json"
		add "$reg/test-image-user-$n:latest" "$c/test-image-user-$n"
	done

	# test-image-predefined-group: user 1000 in a group 50000 that only /etc/group names
	# (images/image-predefined-group).
	r=$(variant predefined-group busybox)
	rm -f "$r/etc/passwd" "$r/etc/group"
	cp "$cache/rootfs/busybox/etc/passwd" "$r/etc/passwd"
	cp "$cache/rootfs/busybox/etc/group" "$r/etc/group"
	echo 'default-user:x:1000:1000:Linux User,,,:/home/default-user:/bin/sh' >>"$r/etc/passwd"
	printf 'default-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n' >>"$r/etc/group"
	mkdir -p "$r/home/default-user" && chown 1000:1000 "$r/home/default-user"
	image_config "$cfg/predefined-group.json" 'Cmd=["sh"]' 'User="1000"'
	pack test-image-predefined-group "$r" "$cfg/predefined-group.json"
	add "$reg/test-image-predefined-group:latest" "$c/test-image-predefined-group"

	printf '%s\n' "${refs[@]}" | sort >"$c/images.txt.tmp"
	mv "$c/images.txt.tmp" "$c/images.txt"
	log "built $((${#refs[@]})) critest references in $c (list: $c/images.txt)"
}

# ensure_base NAME: the NAME image is built and its rootfs is in the cache (critest's
# stand-ins are variants of it).
ensure_base() {
	if up_to_date "$1" && [[ -d $cache/rootfs/$1 && -f $cache/$1.json ]]; then
		return
	fi
	apt-cache show --no-all-versions "$1" >/dev/null 2>&1 || apt-get update -q >&2
	"build_$1"
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
	critest)
		ensure_base busybox
		ensure_base nginx
		build_critest
		;;
	*) log "unknown image $img"; exit 2 ;;
	esac
done

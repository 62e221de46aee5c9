#!/usr/bin/env bash
# Installs the tools that tests need into .tools/bin, idempotently.
#
#   scripts/tools.sh            # every tool
#   scripts/tools.sh hydra      # only the named ones
#
# What it needs from the machine (checked first, before anything is
# installed, so a missing piece fails at once with its name, not half-way):
#   - bash 4 or later, and Go at least the version go.mod names: Hydra,
#     Caddy, grpcurl, Helm, promtool and ghz are built from the Go module
#     proxy;
#   - gcc (cgo) for Hydra's SQLite driver;
#   - for nginx-light, docker-compose, redis and chromium, unless they are
#     installed already:
#     Debian or Ubuntu with apt-get, run as root (as CI does), or as a user
#     with sudo. sudo is never called when already root.
# On other systems install nginx (with auth_request) and docker-compose
# yourself and put them on PATH: the script then only links them.
#
# Each tool has one install_<name> function that returns early, with
# status=cached, when the binary in .tools/bin works and its stamp in
# .tools/stamps records the wanted version, and otherwise installs it and
# sets status=installed. Add a tool by writing its function, saying in
# NEEDS what it needs, and listing it in TOOLS below. Works from any
# directory.
set -euo pipefail
if ((BASH_VERSINFO[0] < 4)); then # associative arrays below
	echo "tools.sh: needs bash 4 or later (found $BASH_VERSION)" >&2
	exit 1
fi

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS_DIR="$REPO/.tools"
BIN="$TOOLS_DIR/bin"
STAMPS="$TOOLS_DIR/stamps"
SRC="$TOOLS_DIR/src"

# The tools the tests need; installed when no names are given. Each follows
# the shape of install_hydra: check binary and stamp, install, write the
# stamp. Optional tools (ghz) are installed by name: scripts/tools.sh ghz.
TOOLS=(hydra nginx caddy docker_compose grpcurl helm redis promtool chromium)

# What each tool needs, checked by preflight: go (the Go toolchain), cc
# (cgo with a C compiler), apt (apt-get as root or with sudo; needed only
# when the program is not found already, which found_<name> tells).
declare -A NEEDS=([hydra]="go cc" [nginx]=apt [caddy]=go [docker_compose]=apt [grpcurl]=go [ghz]=go [helm]=go [redis]=apt [promtool]=go [chromium]=apt)

HYDRA_VERSION=v2.3.0
# Hydra v2.3.0 needs Ory's fork of pop; the go.mod of hydra replaces it, but
# replace directives of dependencies are ignored, so we repeat it here.
HYDRA_POP_REPLACE=github.com/gobuffalo/pop/v6=github.com/ory/pop/v6@v6.2.1-0.20241121111754-e5dfc0f3344b
# sqlite_unlock_notify: with DSN=memory, SQLite's shared cache answers
# concurrent writes (a burst of jwt-bearer grants recording their jti) with
# SQLITE_LOCKED, which Hydra turns into 500s; the tag makes them wait.
HYDRA_TAGS=sqlite,sqlite_omit_load_extension,sqlite_unlock_notify

# nginx comes from Debian; nginx-light is the smallest flavour built with
# the auth_request module, all the e2e tests need of it.
NGINX_PACKAGE=nginx-light
CADDY_VERSION=v2.11.9
# grpcurl: the gRPC command line client the README and the demo tell users
# to try; e2e tests run those very commands against a live server.
GRPCURL_VERSION=v1.9.3
# ghz: gRPC load generator, for cross-checking `go run ./bench` by hand.
GHZ_VERSION=v0.93.0
# docker-compose v1.29 from Debian: validates docker-compose.yaml offline.
DOCKER_COMPOSE_PACKAGE=docker-compose
# helm: renders and lints deploy/helm/tokenauthz in the deploy tests.
HELM_VERSION=v3.22.0
# Redis from Debian (redis-server brings redis-tools, so redis-cli): the
# shared token cache's tests start their own standalone, Cluster and TLS
# instances on free ports. Debian builds it with TLS.
REDIS_PACKAGE=redis-server
# promtool: checks deploy/prometheus/alerts.yaml and runs its unit tests
# (promtool test rules) in the deploy tests. Prometheus 3 publishes its Go
# module as v0.<minor>.<patch>: v0.316.0 is Prometheus 3.16.0.
PROMTOOL_MODULE_VERSION=v0.316.0
# chromium from Debian: the status page's browser tests drive it headless
# with chromedp (a test tool's own browser download cannot work offline).
CHROMIUM_PACKAGE=chromium

# stamp_ok NAME WANT: the stamp of NAME records WANT.
stamp_ok() {
	[[ -f "$STAMPS/$1" && "$(cat "$STAMPS/$1")" == "$2" ]]
}

# build_tool NAME STAMP BUILD [optional]: runs the function BUILD in a fresh
# .tools/src/NAME, its output in .tools/src/NAME.log; BUILD leaves the
# program at .tools/bin/NAME.tmp, which then becomes .tools/bin/NAME,
# stamped STAMP (status=installed). A failed build prints the log's tail
# and exits, or, for an optional tool, leaves the tail in
# .tools/stamps/NAME.failed (for its tests to quote when they skip), sets
# status=failed and lets the other tools install.
build_tool() {
	local name=$1 stamp=$2 build=$3 optional=${4:-}
	local dir="$SRC/$name" log="$SRC/$name.log"
	rm -rf "$dir" "$STAMPS/$name" "$STAMPS/$name.failed"
	mkdir -p "$dir"
	# set -e does not apply inside an if condition: BUILD chains with &&.
	if ! (cd "$dir" && "$build") >"$log" 2>&1; then
		tail -n 40 "$log" >&2
		echo "$name: build failed, full log in $log" >&2
		if [[ -z "$optional" ]]; then
			exit 1
		fi
		{
			echo "building $name ($stamp) failed (full log in $log):"
			tail -n 20 "$log"
		} >"$STAMPS/$name.failed"
		status=failed
		return
	fi
	mv "$BIN/$name.tmp" "$BIN/$name"
	echo "$stamp" >"$STAMPS/$name"
	status=installed
}

# go_install PACKAGE@VERSION [go install flags]: go install into the
# current folder, the program then moved to .tools/bin/<its name>.tmp.
go_install() {
	local pkg=$1
	shift
	GOWORK=off GOFLAGS=-buildvcs=false GOBIN="$PWD" go install "$@" "$pkg" &&
		mv "$PWD/$(basename "${pkg%@*}")" "$BIN/$(basename "${pkg%@*}").tmp"
}

# in_module NAME: a fresh Go module for building a tool with its own
# requirements (replace directives, a stamped version) in the current folder.
in_module() {
	export GOWORK=off GOFLAGS="-mod=mod -buildvcs=false" &&
		go mod init "tokenauthz.tools/$1"
}

# hydra: Ory Hydra built from the Go module proxy, with the in-memory
# SQLite driver (cgo) so tests can run it with dsn=memory.
install_hydra() {
	local want="$HYDRA_VERSION tags=$HYDRA_TAGS"
	if [[ -x "$BIN/hydra" ]] && stamp_ok hydra "$want" &&
		[[ "$("$BIN/hydra" version 2>/dev/null)" == *"Version:"*"$HYDRA_VERSION"* ]]; then
		status=cached
		return
	fi
	build_tool hydra "$want" build_hydra
}

build_hydra() {
	in_module hydra &&
		go mod edit -replace "$HYDRA_POP_REPLACE" &&
		go get -tool "github.com/ory/hydra/v2@$HYDRA_VERSION" &&
		go build -tags "$HYDRA_TAGS" \
			-ldflags "-X github.com/ory/hydra/v2/driver/config.Version=$HYDRA_VERSION" \
			-o "$BIN/hydra.tmp" github.com/ory/hydra/v2
}

# nginx_has_auth_request BIN: BIN runs and was built with auth_request
# (nginx -V prints its configure arguments on stderr).
nginx_has_auth_request() {
	[[ -x "$1" ]] && "$1" -V 2>&1 | grep -q -- --with-http_auth_request_module
}

# found_nginx: prints the nginx with auth_request already installed, if any.
found_nginx() {
	local found
	found="$(readlink -f "$(command -v nginx || echo /usr/sbin/nginx)" || true)" # sbin: not on a user's PATH
	if nginx_has_auth_request "$found"; then echo "$found"; fi
}

# as_root CMD...: CMD as root: directly when root, else through sudo
# (preflight made sure there is one).
as_root() {
	if [[ "$(id -u)" == 0 ]]; then
		"$@"
	else
		sudo "$@"
	fi
}

# apt_install NAME PACKAGE: installs a Debian package for tool NAME, the log
# in .tools/src/NAME.log.
apt_install() {
	local log="$SRC/$1.log"
	if ! (
		as_root apt-get update &&
			as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$2"
	) >"$log" 2>&1; then
		tail -n 40 "$log" >&2
		echo "$1: apt-get install $2 failed, full log in $log" >&2
		exit 1
	fi
}

# find_or_apt NAME PACKAGE WHAT: sets found to what found_NAME prints,
# installing PACKAGE with apt-get first when it prints nothing
# (status=installed); WHAT says what is wrong if it still prints nothing.
find_or_apt() {
	found="$("found_$1")"
	if [[ -n "$found" ]]; then
		return
	fi
	apt_install "$1" "$2"
	found="$("found_$1")"
	if [[ -z "$found" ]]; then
		echo "$1: $3 after installing $2" >&2
		exit 1
	fi
	status=installed
}

# link_tool NAME FILE VERSION: .tools/bin/FILE links to the found program,
# stamped with the version it reports.
link_tool() {
	local name=$1 file=$2 found=$3 version=$4
	if [[ "$(readlink "$BIN/$file" 2>/dev/null)" == "$found" ]] && stamp_ok "$name" "$version"; then
		status=${status:-cached}
		return
	fi
	ln -sfn "$found" "$BIN/$file"
	echo "$version" >"$STAMPS/$name"
	status=${status:-linked}
}

# nginx: Debian's nginx-light, installed with apt-get only when no nginx
# with auth_request is found; .tools/bin/nginx links to it so tests find it.
# The stamp records the version nginx reports. Tests run their own nginx on
# their own ports; the system service is not used (Debian's container images
# keep it from starting with a policy-rc.d).
install_nginx() {
	find_or_apt nginx "$NGINX_PACKAGE" "no nginx with --with-http_auth_request_module"
	link_tool nginx nginx "$found" "$("$found" -v 2>&1)"
}

# caddy: built from the Go module proxy with go install (no plugins). A
# failed build does not stop the other tools: it leaves the log tail in
# .tools/stamps/caddy.failed, and the Caddy e2e test skips, quoting it.
# The next run tries again.
install_caddy() {
	# `caddy version` says "unknown" when built by go install; build-info
	# names the module version.
	if [[ -x "$BIN/caddy" ]] && stamp_ok caddy "$CADDY_VERSION" &&
		"$BIN/caddy" build-info 2>/dev/null | grep -qE "^mod[[:space:]]+github.com/caddyserver/caddy/v2[[:space:]]+$CADDY_VERSION[[:space:]]"; then
		status=cached
		return
	fi
	build_tool caddy "$CADDY_VERSION" build_caddy optional
}

build_caddy() { go_install "github.com/caddyserver/caddy/v2/cmd/caddy@$CADDY_VERSION"; }

# found_docker_compose: prints the working docker-compose, if any.
found_docker_compose() {
	local found
	found="$(readlink -f "$(command -v docker-compose || echo /usr/bin/docker-compose)" || true)"
	if "$found" version --short >/dev/null 2>&1; then echo "$found"; fi
}

# docker_compose: Debian's docker-compose (v1.29, Python), linked into
# .tools/bin. The tests only run `docker-compose config -q` on
# docker-compose.yaml: it needs no Docker engine.
install_docker_compose() {
	find_or_apt docker_compose "$DOCKER_COMPOSE_PACKAGE" "docker-compose does not run"
	link_tool docker_compose docker-compose "$found" "$("$found" version --short 2>&1)"
}

# found_redis: prints the redis-server found, if redis-cli is there too.
# Not resolved with readlink -f: Debian's redis-server is a symlink to
# redis-check-rdb, one binary that acts by the name it is run as.
found_redis() {
	local server cli
	server="$(command -v redis-server || echo /usr/bin/redis-server)"
	cli="$(command -v redis-cli || echo /usr/bin/redis-cli)"
	if "$server" --version >/dev/null 2>&1 && "$cli" --version >/dev/null 2>&1; then echo "$server"; fi
}

# redis: Debian's redis-server and redis-cli, installed with apt-get only
# when either is missing; .tools/bin links to both and the stamp records the
# version the server reports. Tests run their own servers on their own
# ports with persistence off; the system service is not used (Debian's
# container images keep it from starting with a policy-rc.d).
install_redis() {
	find_or_apt redis "$REDIS_PACKAGE" "redis-server or redis-cli does not run"
	link_tool redis redis-server "$found" "$("$found" --version 2>&1)"
	ln -sfn "$(command -v redis-cli || echo /usr/bin/redis-cli)" "$BIN/redis-cli"
}

# grpcurl: built from the Go module proxy with go install.
install_grpcurl() {
	if [[ -x "$BIN/grpcurl" ]] && stamp_ok grpcurl "$GRPCURL_VERSION"; then
		status=cached
		return
	fi
	build_tool grpcurl "$GRPCURL_VERSION" build_grpcurl
}

build_grpcurl() { go_install "github.com/fullstorydev/grpcurl/cmd/grpcurl@$GRPCURL_VERSION"; }

# helm: built from the Go module proxy in its own module, so that the
# Kubernetes version its capabilities default to (and `helm version`) are
# stamped as Helm's Makefile does, from the client-go it is built with.
install_helm() {
	if [[ -x "$BIN/helm" ]] && stamp_ok helm "$HELM_VERSION" &&
		[[ "$("$BIN/helm" version --template '{{.Version}}' 2>/dev/null)" == "$HELM_VERSION" ]]; then
		status=cached
		return
	fi
	build_tool helm "$HELM_VERSION" build_helm
}

build_helm() {
	local pkg=helm.sh/helm/${HELM_VERSION%%.*} kube
	in_module helm &&
		go get "$pkg@$HELM_VERSION" &&
		kube="$(go list -m -f '{{.Version}}' k8s.io/client-go)" && kube="${kube#v0.}" && kube="${kube%%.*}" &&
		go build -ldflags "-s -w -X $pkg/internal/version.version=$HELM_VERSION
			-X $pkg/pkg/chartutil.k8sVersionMajor=1 -X $pkg/pkg/chartutil.k8sVersionMinor=$kube
			-X $pkg/pkg/lint/rules.k8sVersionMajor=1 -X $pkg/pkg/lint/rules.k8sVersionMinor=$kube" \
			-o "$BIN/helm.tmp" "$pkg/cmd/helm"
}

# promtool: built from the Go module proxy in its own module (Prometheus'
# go.mod has exclude directives, which go install pkg@version refuses),
# stamped with its release version as Prometheus' own build does.
install_promtool() {
	if [[ -x "$BIN/promtool" ]] && stamp_ok promtool "$PROMTOOL_MODULE_VERSION" &&
		[[ "$("$BIN/promtool" --version 2>&1)" == *"version $(promtool_release)"* ]]; then
		status=cached
		return
	fi
	build_tool promtool "$PROMTOOL_MODULE_VERSION" build_promtool
}

# promtool_release: Prometheus' release of PROMTOOL_MODULE_VERSION
# (v0.316.0 -> 316.0 -> 3.16.0).
promtool_release() {
	local v=${PROMTOOL_MODULE_VERSION#v0.}
	local minor=${v%%.*}
	echo "$((minor / 100)).$((minor % 100)).${v#*.}"
}

build_promtool() {
	local mod=github.com/prometheus/prometheus release
	release="$(promtool_release)"
	in_module promtool &&
		go get "$mod/cmd/promtool@$PROMTOOL_MODULE_VERSION" &&
		go build -ldflags "-s -w -X github.com/prometheus/common/version.Version=$release
			-X github.com/prometheus/common/version.Revision=$PROMTOOL_MODULE_VERSION" \
			-o "$BIN/promtool.tmp" "$mod/cmd/promtool"
}

# found_chromium: prints the Chromium found, if it runs.
found_chromium() {
	local found
	found="$(readlink -f "$(command -v chromium || echo /usr/bin/chromium)" || true)"
	if [[ -x "$found" ]] && "$found" --version >/dev/null 2>&1; then echo "$found"; fi
}

# chromium: Debian's chromium, installed with apt-get only when none runs;
# .tools/bin/chromium links to it and the stamp records the version it
# reports. The tests start it themselves, headless, with a fresh profile.
install_chromium() {
	find_or_apt chromium "$CHROMIUM_PACKAGE" "chromium does not run"
	# Debian's wrapper script may complain on stderr (its memory check):
	# the stamp takes the version line only.
	link_tool chromium chromium "$found" "$("$found" --version 2>/dev/null)"
}

# ghz: built from the Go module proxy with go install. Optional: the
# benchmark harness (go run ./bench) has its own load generator; ghz is for
# cross-checking it by hand (see docs/benchmarks.md). A failed build leaves
# the log tail in .tools/stamps/ghz.failed and does not stop other tools.
install_ghz() {
	if [[ -x "$BIN/ghz" ]] && stamp_ok ghz "$GHZ_VERSION" &&
		[[ "$("$BIN/ghz" --version 2>&1)" == *"${GHZ_VERSION#v}"* ]]; then
		status=cached
		return
	fi
	build_tool ghz "$GHZ_VERSION" build_ghz optional
}

build_ghz() { go_install "github.com/bojand/ghz/cmd/ghz@$GHZ_VERSION" -ldflags "-X main.version=${GHZ_VERSION#v}"; }

# preflight NAME...: checks, before anything is installed, that the machine
# has what the named tools need (NEEDS), and names everything missing.
preflight() {
	local missing=() name need want have
	for name in "$@"; do
		for need in ${NEEDS[$name]:-}; do
			case $need in
			go)
				want="go$(sed -n 's/^go \([0-9.]*\).*/\1/p' "$REPO/go.mod")"
				if ! have="$(go env GOVERSION 2>/dev/null)"; then
					missing+=("$name: Go ($want or later; https://go.dev/doc/install)")
				elif [[ "$(printf '%s\n' "$want" "$have" | sort -V | head -n 1)" != "$want" ]]; then
					missing+=("$name: Go $want or later (found $have)")
				fi
				;;
			cc)
				command -v go >/dev/null || continue # said above
				if [[ "$(go env CGO_ENABLED 2>/dev/null)" != 1 ]] || ! command -v "$(go env CC 2>/dev/null)" >/dev/null; then
					missing+=("$name: cgo with a C compiler, for SQLite (Debian: apt-get install gcc)")
				fi
				;;
			apt)
				[[ -z "$("found_$name")" ]] || continue
				if ! command -v apt-get >/dev/null || ! grep -qiE '^(ID|ID_LIKE)=.*(debian|ubuntu)' /etc/os-release 2>/dev/null; then
					missing+=("$name: not installed, and this is not Debian or Ubuntu with apt-get: install it yourself and put it on PATH")
				elif [[ "$(id -u)" != 0 ]] && ! command -v sudo >/dev/null; then
					missing+=("$name: apt-get install needs root, or sudo for this user")
				fi
				;;
			esac
		done
	done
	if [[ ${#missing[@]} -gt 0 ]]; then
		echo "tools.sh: this machine lacks what these tools need; nothing was installed:" >&2
		printf '  - %s\n' "${missing[@]}" >&2
		exit 1
	fi
}

status= # set by each install_<name>: installed, cached, linked or failed
found=  # set by find_or_apt: the program found

main() {
	mkdir -p "$BIN" "$STAMPS" "$SRC"
	local names=("$@")
	[[ ${#names[@]} -gt 0 ]] || names=("${TOOLS[@]}")
	local name start
	for name in "${names[@]}"; do
		if ! declare -F "install_$name" >/dev/null; then
			echo "tools.sh: unknown tool $name (known: ${TOOLS[*]} ghz)" >&2
			exit 2
		fi
	done
	preflight "${names[@]}"
	for name in "${names[@]}"; do
		start=$SECONDS
		status=
		"install_$name"
		echo "$name: $status ($((SECONDS - start))s)"
	done
}

main "$@"

#!/usr/bin/env bash
# Installs the tools that tests need into .tools/bin, idempotently.
#
#   scripts/tools.sh            # every tool
#   scripts/tools.sh hydra      # only the named ones
#
# Each tool has one install_<name> function that returns early, with
# status=cached, when the binary in .tools/bin works and its stamp in
# .tools/stamps records the wanted version, and otherwise installs it and
# sets status=installed. Add a tool by writing its function and listing it in
# TOOLS below. Works from any directory; needs Go, and gcc for cgo.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS_DIR="$REPO/.tools"
BIN="$TOOLS_DIR/bin"
STAMPS="$TOOLS_DIR/stamps"
SRC="$TOOLS_DIR/src"

# The tools the tests need; installed when no names are given. Each follows
# the shape of install_hydra: check binary and stamp, install, write the
# stamp. Optional tools (ghz) are installed by name: scripts/tools.sh ghz.
TOOLS=(hydra nginx caddy docker_compose grpcurl redis)

HYDRA_VERSION=v2.3.0
# Hydra v2.3.0 needs Ory's fork of pop; the go.mod of hydra replaces it, but
# replace directives of dependencies are ignored, so we repeat it here.
HYDRA_POP_REPLACE=github.com/gobuffalo/pop/v6=github.com/ory/pop/v6@v6.2.1-0.20241121111754-e5dfc0f3344b
HYDRA_TAGS=sqlite,sqlite_omit_load_extension

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
# Redis from Debian (redis-server brings redis-tools, so redis-cli): the
# shared token cache's tests start their own standalone, Cluster and TLS
# instances on free ports. Debian builds it with TLS.
REDIS_PACKAGE=redis-server

# stamp_ok NAME WANT: the stamp of NAME records WANT.
stamp_ok() {
	[[ -f "$STAMPS/$1" && "$(cat "$STAMPS/$1")" == "$2" ]]
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
	if [[ "$(go env CGO_ENABLED)" != 1 ]] || ! command -v "$(go env CC)" >/dev/null; then
		echo "hydra: needs cgo and a C compiler for SQLite (apt-get install gcc)" >&2
		exit 1
	fi
	local dir="$SRC/hydra"
	rm -rf "$dir" "$STAMPS/hydra"
	mkdir -p "$dir"
	# set -e does not apply inside an if condition: chain with &&.
	if ! (
		cd "$dir" &&
			export GOWORK=off GOFLAGS="-mod=mod -buildvcs=false" &&
			go mod init tokenauthz.tools/hydra &&
			go mod edit -replace "$HYDRA_POP_REPLACE" &&
			go get -tool "github.com/ory/hydra/v2@$HYDRA_VERSION" &&
			go build -tags "$HYDRA_TAGS" \
				-ldflags "-X github.com/ory/hydra/v2/driver/config.Version=$HYDRA_VERSION" \
				-o "$BIN/hydra.tmp" github.com/ory/hydra/v2
	) >"$dir.log" 2>&1; then
		tail -n 40 "$dir.log" >&2
		echo "hydra: build failed, full log in $dir.log" >&2
		exit 1
	fi
	mv "$BIN/hydra.tmp" "$BIN/hydra"
	echo "$want" >"$STAMPS/hydra"
	status=installed
}

# nginx_has_auth_request BIN: BIN runs and was built with auth_request
# (nginx -V prints its configure arguments on stderr).
nginx_has_auth_request() {
	[[ -x "$1" ]] && "$1" -V 2>&1 | grep -q -- --with-http_auth_request_module
}

# nginx: Debian's nginx-light, installed with apt-get only when no nginx
# with auth_request is found; .tools/bin/nginx links to it so tests find it.
# The stamp records the version nginx reports. Tests run their own nginx on
# their own ports; the system service is not used (Debian's container images
# keep it from starting with a policy-rc.d).
install_nginx() {
	local found
	found="$(command -v nginx || echo /usr/sbin/nginx)" # sbin: not on a user's PATH
	found="$(readlink -f "$found" || true)"
	if ! nginx_has_auth_request "$found"; then
		local sudo=() log="$SRC/nginx.log"
		if [[ "$(id -u)" != 0 ]]; then
			command -v sudo >/dev/null || {
				echo "nginx: apt-get install $NGINX_PACKAGE needs root (or sudo)" >&2
				exit 1
			}
			sudo=(sudo)
		fi
		if ! (
			"${sudo[@]}" apt-get update &&
				"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
					apt-get install -y --no-install-recommends "$NGINX_PACKAGE"
		) >"$log" 2>&1; then
			tail -n 40 "$log" >&2
			echo "nginx: apt-get install $NGINX_PACKAGE failed, full log in $log" >&2
			exit 1
		fi
		found=/usr/sbin/nginx
		if ! nginx_has_auth_request "$found"; then
			echo "nginx: $found lacks --with-http_auth_request_module" >&2
			exit 1
		fi
		status=installed
	fi
	local version
	version="$("$found" -v 2>&1)"
	if [[ "$(readlink "$BIN/nginx" 2>/dev/null)" == "$found" ]] && stamp_ok nginx "$version"; then
		status=${status:-cached}
		return
	fi
	ln -sfn "$found" "$BIN/nginx"
	echo "$version" >"$STAMPS/nginx"
	status=${status:-linked}
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
	local log="$SRC/caddy.log"
	rm -f "$STAMPS/caddy" "$STAMPS/caddy.failed"
	if ! (
		export GOWORK=off GOFLAGS=-buildvcs=false GOBIN="$SRC/caddy-bin" &&
			go install "github.com/caddyserver/caddy/v2/cmd/caddy@$CADDY_VERSION"
	) >"$log" 2>&1; then
		tail -n 40 "$log" >&2
		{
			echo "go install caddy@$CADDY_VERSION failed (full log in $log):"
			tail -n 20 "$log"
		} >"$STAMPS/caddy.failed"
		echo "caddy: build failed, full log in $log; the Caddy e2e test will skip" >&2
		status=failed
		return
	fi
	mv "$SRC/caddy-bin/caddy" "$BIN/caddy"
	echo "$CADDY_VERSION" >"$STAMPS/caddy"
	status=installed
}

# docker_compose: Debian's docker-compose (v1.29, Python), linked into
# .tools/bin. The tests only run `docker-compose config -q` on
# docker-compose.yaml: it needs no Docker engine.
install_docker_compose() {
	local found
	found="$(readlink -f "$(command -v docker-compose || echo /usr/bin/docker-compose)" || true)"
	if ! "$found" version --short >/dev/null 2>&1; then
		local sudo=() log="$SRC/docker_compose.log"
		if [[ "$(id -u)" != 0 ]]; then
			command -v sudo >/dev/null || {
				echo "docker_compose: apt-get install $DOCKER_COMPOSE_PACKAGE needs root (or sudo)" >&2
				exit 1
			}
			sudo=(sudo)
		fi
		if ! (
			"${sudo[@]}" apt-get update &&
				"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
					apt-get install -y --no-install-recommends "$DOCKER_COMPOSE_PACKAGE"
		) >"$log" 2>&1; then
			tail -n 40 "$log" >&2
			echo "docker_compose: apt-get install $DOCKER_COMPOSE_PACKAGE failed, full log in $log" >&2
			exit 1
		fi
		found=/usr/bin/docker-compose
		status=installed
	fi
	local version
	version="$("$found" version --short 2>&1)"
	if [[ "$(readlink "$BIN/docker-compose" 2>/dev/null)" == "$found" ]] && stamp_ok docker_compose "$version"; then
		status=${status:-cached}
		return
	fi
	ln -sfn "$found" "$BIN/docker-compose"
	echo "$version" >"$STAMPS/docker_compose"
	status=${status:-linked}
}

# redis: Debian's redis-server and redis-cli, installed with apt-get only
# when either is missing; .tools/bin links to both and the stamp records the
# version the server reports. Tests run their own servers on their own
# ports with persistence off; the system service is not used (Debian's
# container images keep it from starting with a policy-rc.d).
install_redis() {
	# Not resolved with readlink -f: Debian's redis-server is a symlink to
	# redis-check-rdb, one binary that acts by the name it is run as.
	local server cli
	server="$(command -v redis-server || echo /usr/bin/redis-server)"
	cli="$(command -v redis-cli || echo /usr/bin/redis-cli)"
	if ! "$server" --version >/dev/null 2>&1 || ! "$cli" --version >/dev/null 2>&1; then
		local sudo=() log="$SRC/redis.log"
		if [[ "$(id -u)" != 0 ]]; then
			command -v sudo >/dev/null || {
				echo "redis: apt-get install $REDIS_PACKAGE needs root (or sudo)" >&2
				exit 1
			}
			sudo=(sudo)
		fi
		if ! (
			"${sudo[@]}" apt-get update &&
				"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
					apt-get install -y --no-install-recommends "$REDIS_PACKAGE"
		) >"$log" 2>&1; then
			tail -n 40 "$log" >&2
			echo "redis: apt-get install $REDIS_PACKAGE failed, full log in $log" >&2
			exit 1
		fi
		server=/usr/bin/redis-server
		cli=/usr/bin/redis-cli
		status=installed
	fi
	local version
	version="$("$server" --version 2>&1)"
	if [[ "$(readlink "$BIN/redis-server" 2>/dev/null)" == "$server" &&
		"$(readlink "$BIN/redis-cli" 2>/dev/null)" == "$cli" ]] && stamp_ok redis "$version"; then
		status=${status:-cached}
		return
	fi
	ln -sfn "$server" "$BIN/redis-server"
	ln -sfn "$cli" "$BIN/redis-cli"
	echo "$version" >"$STAMPS/redis"
	status=${status:-linked}
}

# grpcurl: built from the Go module proxy with go install.
install_grpcurl() {
	if [[ -x "$BIN/grpcurl" ]] && stamp_ok grpcurl "$GRPCURL_VERSION"; then
		status=cached
		return
	fi
	local log="$SRC/grpcurl.log"
	rm -f "$STAMPS/grpcurl"
	if ! (
		export GOWORK=off GOFLAGS=-buildvcs=false GOBIN="$BIN" &&
			go install "github.com/fullstorydev/grpcurl/cmd/grpcurl@$GRPCURL_VERSION"
	) >"$log" 2>&1; then
		tail -n 40 "$log" >&2
		echo "grpcurl: build failed, full log in $log" >&2
		exit 1
	fi
	echo "$GRPCURL_VERSION" >"$STAMPS/grpcurl"
	status=installed
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
	local log="$SRC/ghz.log"
	rm -f "$STAMPS/ghz" "$STAMPS/ghz.failed"
	if ! (
		export GOWORK=off GOFLAGS=-buildvcs=false GOBIN="$SRC/ghz-bin" &&
			go install -ldflags "-X main.version=${GHZ_VERSION#v}" "github.com/bojand/ghz/cmd/ghz@$GHZ_VERSION"
	) >"$log" 2>&1; then
		tail -n 40 "$log" >&2
		{
			echo "go install ghz@$GHZ_VERSION failed (full log in $log):"
			tail -n 20 "$log"
		} >"$STAMPS/ghz.failed"
		echo "ghz: build failed, full log in $log" >&2
		status=failed
		return
	fi
	mv "$SRC/ghz-bin/ghz" "$BIN/ghz"
	echo "$GHZ_VERSION" >"$STAMPS/ghz"
	status=installed
}

status= # set by each install_<name>: installed, cached, linked or failed

main() {
	mkdir -p "$BIN" "$STAMPS" "$SRC"
	local names=("$@")
	[[ ${#names[@]} -gt 0 ]] || names=("${TOOLS[@]}")
	local name start
	for name in "${names[@]}"; do
		if ! declare -F "install_$name" >/dev/null; then
			echo "tools.sh: unknown tool $name (known: ${TOOLS[*]})" >&2
			exit 2
		fi
		start=$SECONDS
		status=
		"install_$name"
		echo "$name: $status ($((SECONDS - start))s)"
	done
}

main "$@"

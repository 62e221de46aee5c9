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

# Later tools (nginx-light via apt-get, caddy, ghz, grpcurl) follow the
# shape of install_hydra: check binary and stamp, install, write the stamp.
TOOLS=(hydra)

HYDRA_VERSION=v2.3.0
# Hydra v2.3.0 needs Ory's fork of pop; the go.mod of hydra replaces it, but
# replace directives of dependencies are ignored, so we repeat it here.
HYDRA_POP_REPLACE=github.com/gobuffalo/pop/v6=github.com/ory/pop/v6@v6.2.1-0.20241121111754-e5dfc0f3344b
HYDRA_TAGS=sqlite,sqlite_omit_load_extension

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

status= # set by each install_<name>: installed or cached

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

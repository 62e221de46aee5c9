#!/usr/bin/env bash
# Runs every test, as CI does: installs the tools the tests need (cached in
# .tools/), then vet and the race-enabled test suite including the end-to-end
# tests against real token servers and proxies.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/tools.sh
export TOKENAUTHZ_E2E=1 # a missing tool fails the e2e tests instead of skipping them

unformatted=$(gofmt -l $(git ls-files '*.go'))
if [[ -n "$unformatted" ]]; then
	echo "gofmt needed:" >&2
	echo "$unformatted" >&2
	exit 1
fi
go vet ./...
go mod tidy -diff # go.mod and go.sum say exactly what the code imports
go test -race -count=1 -timeout 20m ./...
# The race detector changes allocation counts: this test runs without it.
go test -count=1 -run '^TestHitAllocations$' ./authz

# Each fuzz target briefly (go test -fuzz takes one target at a time); the
# plain run above already replays every seed under testdata/fuzz.
fuzztime=${FUZZTIME:-10s}
for target in authz:FuzzCheck authz:FuzzWireCheck authz:FuzzHTTPHandler tokens:FuzzParseToken config:FuzzParse scopes:FuzzMatch; do
	go test -run '^$' -fuzz "^${target#*:}\$" -fuzztime "$fuzztime" "./${target%%:*}"
done

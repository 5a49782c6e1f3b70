#!/usr/bin/env bash
# Builds the programs the interop tests run beside meshtrace, none of them written by us:
#   - Jaeger v2, `cmd/jaeger` of the Go module github.com/jaegertracing/jaeger at $JAEGER_VERSION,
#     built from the module's own folder as its Makefile does (`go install module@version` is
#     refused: its go.mod has a replace directive), into the cache folder, where it stays
#     between runs on the same machine;
#   - the Go peers of tests/peers/go (go vet, gofmt and their own go tests first).
# Needs Go and the Go module proxy. Prints the variables the tests read; `.ci/run` exports them.
#
#   .ci/build-peers.sh            # then, e.g.: MESHTRACE_REQUIRE_PEERS=1 cargo test --all-features --test jaeger
set -euo pipefail
cd "$(dirname "$0")/.."

JAEGER_VERSION=v1.76.0
cache=${MESHTRACE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meshtrace}
jaeger="$cache/jaeger-$JAEGER_VERSION/jaeger"

go version >&2
if [ -x "$jaeger" ]; then
  echo "jaeger $JAEGER_VERSION: cached at $jaeger" >&2
else
  start=$(date +%s)
  mkdir -p "$(dirname "$jaeger")"
  log="$(dirname "$jaeger")/build.log"
  # Its hundreds of `go: downloading` lines go to the log, shown only if the build fails.
  if ! {
    go mod download github.com/jaegertracing/jaeger@"$JAEGER_VERSION" &&
      src="$(go env GOMODCACHE)/github.com/jaegertracing/jaeger@$JAEGER_VERSION" &&
      (cd "$src" && go build -trimpath -o "$jaeger.part" ./cmd/jaeger)
  } >"$log" 2>&1; then
    cat "$log" >&2
    echo "jaeger $JAEGER_VERSION: the build failed (log above, kept in $log)" >&2
    exit 1
  fi
  mv "$jaeger.part" "$jaeger"
  echo "jaeger $JAEGER_VERSION: built in $(( $(date +%s) - start )) s into $jaeger" >&2
fi

peer="$cache/go-peer/meshtrace-go-peer"
start=$(date +%s)
(
  cd tests/peers/go
  unformatted=$(gofmt -l .)
  if [ -n "$unformatted" ]; then echo "gofmt: $unformatted" >&2; exit 1; fi
  go vet ./...
  go test -count=1 ./... >&2
  go build -o "$peer" .
)
echo "go peer: vetted, tested and built in $(( $(date +%s) - start )) s into $peer" >&2

echo "MESHTRACE_JAEGER=$jaeger"
echo "MESHTRACE_GO_PEER=$peer"

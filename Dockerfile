# tokenauthz container image: a static binary on distroless, running as
# nonroot (uid 65532). No registry publishes it: build it and push it where
# your cluster pulls from (deploy/README.md, "Image").
#   docker build -t tokenauthz .
#   docker run --rm -v $PWD/envoy/tokenauthz.yaml:/etc/tokenauthz/config.yaml:ro \
#     -e TOKENAUTHZ_CLIENT_SECRET=... -p 9001:9001 -p 9002:9002 tokenauthz \
#     --config /etc/tokenauthz/config.yaml --grpc-addr 0.0.0.0:9001 --http-addr 0.0.0.0:9002
# tokenauthz listens on 127.0.0.1 unless told otherwise (flags above, or
# `listen:` in the config): in a container, bind 0.0.0.0.

# The Go of go.mod, to the patch release (deploy tests check they agree).
FROM golang:1.26.8 AS build
WORKDIR /src
# Modules first: this layer stays cached while only the code changes.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# .git is not in the build context: pass what `tokenauthz version` shows,
#   docker build --build-arg VERSION=$(git describe --always) --build-arg COMMIT=$(git rev-parse HEAD) .
ARG VERSION=""
ARG COMMIT=""
ARG STAMPS=github.com/tokenauthz/tokenauthz/internal/buildinfo
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false \
    -ldflags="-s -w -X ${STAMPS}.version=${VERSION} -X ${STAMPS}.commit=${COMMIT}" \
    -o /out/tokenauthz ./cmd/tokenauthz

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/tokenauthz /tokenauthz
USER nonroot:nonroot
# 9001: gRPC ext_authz (Envoy) and gRPC health, 9002: HTTP (/healthz,
# /readyz, /metrics, /check). distroless has no shell or curl: probe with
# the binary itself, `/tokenauthz health --addr 127.0.0.1:9001`. The admin
# listener (/status, 127.0.0.1:9003) stays on the container's loopback:
# not exposed; reach it with `kubectl port-forward`, or bind it wider
# with --admin-addr (a warning is logged).
EXPOSE 9001 9002
ENTRYPOINT ["/tokenauthz", "serve"]

package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/reflection"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// floor is the do-nothing ext_authz server: it answers every Check with OK
// and one fixed header, as long as the one tokenauthz sets, and does nothing
// else. Its cost is gRPC, protobuf and the kernel: what any ext_authz server
// pays. It builds a fresh response per call, as tokenauthz does.
type floor struct {
	authv3.UnimplementedAuthorizationServer
	value string
}

func (f *floor) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
			Headers: []*corev3.HeaderValueOption{{
				Header:       &corev3.HeaderValue{Key: "authorization", Value: f.value},
				Append:       wrapperspb.Bool(false),
				AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
			}},
		}},
	}, nil
}

// servePprof serves the profiles as tokenauthz's admin listener does with
// listen.pprof.
func servePprof(addr string) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	if err := http.ListenAndServe(addr, mux); err != nil {
		fmt.Fprintln(os.Stderr, "floor: pprof:", err)
	}
}

// floorCmd serves the floor until ctx ends; it prints "listening ADDR" once
// it accepts connections.
func floorCmd(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("floor", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	valueLen := fs.Int("value-len", 800, "length of the injected header value")
	pprofAddr := fs.String("pprof-addr", "", "also serve Go's runtime profiles, /debug/pprof/, on this address (bench profile)")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := grpc.NewServer()
	value := "Bearer " + strings.Repeat("x", max(*valueLen-len("Bearer "), 0))
	authv3.RegisterAuthorizationServer(srv, &floor{value: value})
	reflection.Register(srv) // like tokenauthz: ghz and grpcurl need no .proto
	if *pprofAddr != "" {
		go servePprof(*pprofAddr)
	}
	fmt.Fprintf(out, "listening %s\n", lis.Addr())
	go func() { <-ctx.Done(); srv.Stop() }()
	return srv.Serve(lis)
}

package authz

import (
	"context"
	"fmt"
	"runtime"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	protov2 "google.golang.org/protobuf/proto"
)

// The gRPC side of a check, without the standard price: a CheckRequest is
// read by the wire decoder (wire.go) into the few fields a check uses,
// and a cache hit's response is sent as the bytes it was encoded to when
// its entry was first used. Every other message (health, reflection,
// access logs) goes through grpc-go's own proto codec.

// rendered is a response ready to send: the message, and its encoding
// when it was made once for many sends (a hit's); nil wire: encode msg.
type rendered struct {
	msg  *authv3.CheckResponse
	wire mem.BufferSlice
}

// prerender encodes msg once, for a response sent many times. gRPC never
// writes to the buffers it sends, and frees a SliceBuffer as a no-op, so
// every send may share one.
func prerender(msg *authv3.CheckResponse) *rendered {
	wire, err := protov2.Marshal(msg)
	if err != nil { // a response we built always encodes; send msg and let gRPC say why not
		return &rendered{msg: msg}
	}
	return &rendered{msg: msg, wire: mem.BufferSlice{mem.SliceBuffer(wire)}}
}

// checkCodec is the server's codec, under the standard codec's name
// "proto" (so clients need nothing): CheckRequests and prerendered
// responses are its own, everything else the standard codec's.
type checkCodec struct{ std encoding.CodecV2 }

func (checkCodec) Name() string { return proto.Name }

func (c checkCodec) Unmarshal(data mem.BufferSlice, v any) error {
	f, ok := v.(*checkFields)
	if !ok {
		return c.std.Unmarshal(data, v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool()) // data itself when it is one buffer
	defer buf.Free()
	if err := decodeCheck(buf.ReadOnlyData(), f); err != nil {
		return fmt.Errorf("grpc: failed to unmarshal the CheckRequest: %w", err)
	}
	// gRPC reuses the buffer once this returns; the check's strings
	// outlive it, and are a small part of it.
	f.own()
	return nil
}

func (c checkCodec) Marshal(v any) (mem.BufferSlice, error) {
	if r, ok := v.(*rendered); ok {
		if r.wire != nil {
			return r.wire, nil
		}
		v = r.msg
	}
	return c.std.Marshal(v)
}

// GRPCServerOptions are the options a gRPC server serving RegisterGRPC's
// Authorization service must be created with: its codec, and stream
// workers. grpc-go otherwise starts a goroutine per call, whose stack
// grows (and is copied) on every check; a worker's stack has grown once.
// When every worker is busy (a check waiting for its token, an access log
// stream) a call gets its own goroutine, as without workers.
func GRPCServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ForceServerCodecV2(newCheckCodec()),
		grpc.NumStreamWorkers(uint32(streamWorkers * runtime.GOMAXPROCS(0))),
		grpc.InitialWindowSize(windowSize),
		grpc.InitialConnWindowSize(windowSize),
	}
}

// streamWorkers is how many stream workers run per GOMAXPROCS: more than
// the checks a busy proxy keeps in flight (docs/benchmarks.md has what
// they save).
const streamWorkers = 32

// windowSize is the HTTP/2 flow-control window of each stream and of the
// connection. Set, it turns off grpc-go's window estimation, whose pings
// cost a read and a write now and then; CheckRequests are small, so the
// window is never what holds a sender back.
const windowSize = 1 << 20

func newCheckCodec() checkCodec { return checkCodec{std: encoding.GetCodecV2(proto.Name)} }

// RegisterGRPC registers s as envoy.service.auth.v3.Authorization on g,
// which must have been created with GRPCServerOptions. It is the generated
// service with Check's handler decoding through the codec.
func (s *Server) RegisterGRPC(g *grpc.Server) {
	desc := authv3.Authorization_ServiceDesc
	desc.Methods = []grpc.MethodDesc{{MethodName: "Check", Handler: checkHandler}}
	g.RegisterService(&desc, s)
}

// checkHandler is the generated _Authorization_Check_Handler with the
// decoded checkFields in place of a CheckRequest.
func checkHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	req := &checkFields{}
	if err := dec(req); err != nil {
		return nil, err
	}
	s := srv.(*Server)
	if interceptor == nil {
		return s.check(ctx, req), nil
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: authv3.Authorization_Check_FullMethodName}
	return interceptor(ctx, req, info, func(ctx context.Context, req any) (any, error) {
		return s.check(ctx, req.(*checkFields)), nil
	})
}

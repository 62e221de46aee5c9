package authz

import (
	"context"

	"google.golang.org/grpc/mem"
)

// WireCheck returns a function running one check as the gRPC service does
// on req's wire bytes: the codec's decoding, the handler, the codec's
// encoding. The benchmarks time it without gRPC's transport.
func WireCheck(s *Server, req []byte) func(context.Context) (mem.BufferSlice, error) {
	codec := newCheckCodec()
	data := mem.BufferSlice{mem.SliceBuffer(req)}
	dec := func(v any) error { return codec.Unmarshal(data, v) }
	return func(ctx context.Context) (mem.BufferSlice, error) {
		resp, err := checkHandler(s, ctx, dec, nil)
		if err != nil {
			return nil, err
		}
		return codec.Marshal(resp)
	}
}

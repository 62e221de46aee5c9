package authz

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// checkResponse renders a decision for Envoy. The injected header overwrites
// whatever the client sent: append=false for every Envoy version, and
// append_action for current ones (its zero value would append).
func checkResponse(d Decision) *authv3.CheckResponse {
	st := &rpcstatus.Status{Code: int32(d.Code())}
	if d.Allowed() {
		ok := &authv3.OkHttpResponse{}
		if d.Header != "" {
			ok.Headers = []*corev3.HeaderValueOption{{
				Header:       &corev3.HeaderValue{Key: d.Header, Value: d.Value},
				Append:       wrapperspb.Bool(false),
				AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
			}}
		}
		return &authv3.CheckResponse{Status: st, HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: ok}}
	}
	st.Message = string(d.Reason)
	return &authv3.CheckResponse{
		Status: st,
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status: &typev3.HttpStatus{Code: typev3.StatusCode(d.HTTPStatus())},
			Headers: []*corev3.HeaderValueOption{{
				Header:       &corev3.HeaderValue{Key: "content-type", Value: "application/json"},
				AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
			}},
			Body: string(d.Body()),
		}},
	}
}

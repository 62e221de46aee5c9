package authz

import (
	"cmp"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// render makes a decision Envoy's response: a hit's prerendered one, else
// a new one.
func render(d Decision) *rendered {
	if d.resp != nil {
		return d.resp
	}
	return &rendered{msg: buildResponse(d)}
}

// buildResponse renders d. The injected header overwrites whatever the
// client sent: append=false for every Envoy version, and append_action for
// current ones (its zero value would append). Every response carries the
// decision as dynamic metadata, which Envoy stores under the filter's
// namespace, envoy.filters.http.ext_authz, for access logs.
func buildResponse(d Decision) *authv3.CheckResponse {
	st := &rpcstatus.Status{Code: int32(d.Code())}
	md := dynamicMetadata(d)
	if d.Allowed() {
		ok := &authv3.OkHttpResponse{HeadersToRemove: d.RemoveHeaders}
		if d.Header != "" {
			ok.Headers = []*corev3.HeaderValueOption{overwrite(d.Header, d.Value)}
		}
		return &authv3.CheckResponse{Status: st, DynamicMetadata: md, HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: ok}}
	}
	st.Message = string(d.Reason)
	headers := []*corev3.HeaderValueOption{overwrite("content-type", "application/json")}
	if c := d.Challenge(); c != "" {
		headers = append(headers, overwrite("www-authenticate", c))
	}
	return &authv3.CheckResponse{
		Status:          st,
		DynamicMetadata: md,
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(d.HTTPStatus())},
			Headers: headers,
			Body:    string(d.Body()),
		}},
	}
}

func overwrite(key, value string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: key, Value: value},
		Append:       wrapperspb.Bool(false),
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}

// Keys of the dynamic metadata, as access logs name them:
// %DYNAMIC_METADATA(envoy.filters.http.ext_authz:service)%.
const (
	MetaService   = "service"
	MetaEndpoint  = "endpoint"
	MetaGrant     = "grant"
	MetaReason    = "reason"
	MetaCache     = "cache"
	MetaExpiresIn = "token_expires_in"
	MetaTokenID   = "token_id"
)

// CacheNone is the cache outcome of a decision that injected no token.
const CacheNone = "none"

// dynamicMetadata is what a decision tells Envoy's access logs: reason
// and cache always; service, endpoint and grant when a service matched;
// the injected token's entry id and seconds left. Never the token.
func dynamicMetadata(d Decision) *structpb.Struct {
	f := map[string]*structpb.Value{
		MetaReason: structpb.NewStringValue(string(d.Reason)),
		MetaCache:  structpb.NewStringValue(cmp.Or(d.Cache, CacheNone)),
	}
	if d.Service != "" {
		f[MetaService] = structpb.NewStringValue(d.Service)
		f[MetaEndpoint] = structpb.NewStringValue(d.Endpoint)
		f[MetaGrant] = structpb.NewStringValue(d.Grant)
	}
	if d.TokenID != "" {
		f[MetaTokenID] = structpb.NewStringValue(d.TokenID)
	}
	if d.ExpiresIn >= 0 {
		f[MetaExpiresIn] = structpb.NewNumberValue(float64(d.ExpiresIn))
	}
	return &structpb.Struct{Fields: f}
}

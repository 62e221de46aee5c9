package authz

import (
	"encoding/json"
	"net/http"

	"google.golang.org/grpc/codes"
)

// Reason names why a check was allowed or denied. It is the `error` of a
// denial body and a bounded metrics label.
type Reason string

const (
	ReasonTokenInjected    Reason = "token_injected"    // allowed, header set
	ReasonNoGrant          Reason = "no_grant"          // allowed, grant_type none
	ReasonUnmatchedAllowed Reason = "unmatched_allowed" // allowed untouched (unmatched: allow)
	ReasonMalformed        Reason = "malformed_request" // 400
	ReasonMissingSubject   Reason = "missing_subject_token"
	ReasonSubjectRejected  Reason = "subject_token_rejected"
	ReasonUnknownService   Reason = "unknown_service"
	ReasonNoMatch          Reason = "no_matching_service"
	ReasonCallerNotAllowed Reason = "caller_not_allowed" // 403: the principal is not among the callers
	ReasonClientRejected   Reason = "client_config_rejected"
	ReasonUnavailable      Reason = "token_endpoint_unavailable"
	ReasonTimeout          Reason = "timeout"  // the check's own deadline passed
	ReasonCanceled         Reason = "canceled" // the caller went away
	ReasonInternal         Reason = "internal_error"
)

// outcome is how a reason is rendered: gRPC code for the CheckResponse status
// and HTTP status for the denied response.
type outcome struct {
	code   codes.Code
	status int
}

// outcomes is the one table from reason to status, shared by gRPC and HTTP.
var outcomes = map[Reason]outcome{
	ReasonTokenInjected:    {codes.OK, http.StatusOK},
	ReasonNoGrant:          {codes.OK, http.StatusOK},
	ReasonUnmatchedAllowed: {codes.OK, http.StatusOK},
	ReasonMalformed:        {codes.InvalidArgument, http.StatusBadRequest},
	ReasonMissingSubject:   {codes.Unauthenticated, http.StatusUnauthorized},
	ReasonSubjectRejected:  {codes.Unauthenticated, http.StatusUnauthorized},
	ReasonUnknownService:   {codes.PermissionDenied, http.StatusForbidden},
	ReasonNoMatch:          {codes.PermissionDenied, http.StatusForbidden},
	ReasonCallerNotAllowed: {codes.PermissionDenied, http.StatusForbidden},
	ReasonClientRejected:   {codes.Internal, http.StatusInternalServerError},
	ReasonUnavailable:      {codes.Unavailable, http.StatusServiceUnavailable},
	ReasonTimeout:          {codes.Unavailable, http.StatusServiceUnavailable},
	ReasonCanceled:         {codes.Unavailable, http.StatusServiceUnavailable},
	ReasonInternal:         {codes.Internal, http.StatusInternalServerError},
}

// Decision is the outcome of one check, rendered by both the gRPC and HTTP
// front ends. Header/Value are set upstream when allowed, and RemoveHeaders
// dropped.
type Decision struct {
	Reason        Reason
	Header        string
	Value         string
	RemoveHeaders []string
	Message       string
	RequestID     string
	Service       string // for logs and metrics; "" when none matched
	Endpoint      string
	Grant         string // the grant in effect (metrics' names); "" when none was planned
	Cache         string // how the token was found (tokens.CacheHit, ...); "" when none was injected
	TokenID       string // the injected token's cache entry (tokens.Token.ID)
	ExpiresIn     int64  // seconds the injected token has left; -1 when unknown

	// resp is the rendered CheckResponse of a cache hit, shared by every
	// hit of its entry (see injected); nil: render d.
	resp *rendered
}

// Challenge is the WWW-Authenticate value of a 401 denial (RFC 6750
// section 3): an error attribute when the caller's token was refused, none
// when it sent no bearer token (section 3.1); "" for other decisions.
func (d Decision) Challenge() string {
	switch d.Reason {
	case ReasonMissingSubject:
		return "Bearer"
	case ReasonSubjectRejected:
		return `Bearer error="invalid_token"`
	}
	return ""
}

// Allowed reports whether the request may proceed.
func (d Decision) Allowed() bool { return outcomes[d.Reason].code == codes.OK }

// Code is the gRPC status code of the decision.
func (d Decision) Code() codes.Code { return outcomes[d.Reason].code }

// HTTPStatus is the HTTP status of the decision.
func (d Decision) HTTPStatus() int { return outcomes[d.Reason].status }

// Body is the JSON body of a denial. It never holds a token or secret: the
// message is ours, built from reasons and OAuth2 error codes only.
func (d Decision) Body() []byte {
	b, _ := json.Marshal(struct {
		Error     Reason `json:"error"`
		Message   string `json:"message"`
		RequestID string `json:"request_id"`
	}{d.Reason, d.Message, d.RequestID})
	return b
}

func allow(reason Reason, in Input) Decision {
	return Decision{Reason: reason, RequestID: in.RequestID, ExpiresIn: -1}
}

func deny(reason Reason, in Input, message string) Decision {
	return Decision{Reason: reason, RequestID: in.RequestID, Message: message, ExpiresIn: -1}
}

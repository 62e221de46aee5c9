package authz

import (
	"errors"
	"io"
	"log/slog"

	datav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
)

// ExtAuthzMetadataNamespace is where Envoy keeps the dynamic metadata of
// our CheckResponses (source/extensions/filters/http/ext_authz/ext_authz.cc:
// setDynamicMetadata("envoy.filters.http.ext_authz", ...)), and so where an
// access log entry carries it.
const ExtAuthzMetadataNamespace = "envoy.filters.http.ext_authz"

// Purger drops a cached token by its id (tokens.Source.Purge).
type Purger interface {
	Purge(tokenID string) bool
}

// PurgeObserver is told about each token dropped (metrics).
type PurgeObserver interface {
	ObservePurge(service string)
}

// AccessLogs is Envoy's gRPC Access Log Service
// (envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs), so that a
// backend's refusal of an injected token reaches the cache: an entry whose
// upstream answered 401 and whose ext_authz metadata names a token_id has
// that token purged, and the next check fetches a new one. Purger bounds
// how often one key is purged, so a backend answering 401 to everything
// cannot turn each request into a token request. Other entries, unknown
// ids and malformed streams change nothing; a stream's failure ends only
// that stream, never a check.
type AccessLogs struct {
	accesslogv3.UnimplementedAccessLogServiceServer
	srv    *Server
	purger Purger
	obs    PurgeObserver
	log    *slog.Logger
}

var _ accesslogv3.AccessLogServiceServer = (*AccessLogs)(nil)

// AccessLogService is the access log service purging tokens of s's cache.
func (s *Server) AccessLogService(p Purger, obs PurgeObserver) *AccessLogs {
	return &AccessLogs{srv: s, purger: p, obs: obs, log: s.log}
}

// StreamAccessLogs reads what Envoy's http_grpc logger streams: an
// identifier first, then batches of HTTPAccessLogEntry (source/extensions/
// access_loggers/grpc/grpc_access_log_impl.cc; the entry's
// common_properties.metadata is the stream's dynamic metadata,
// grpc_access_log_utils.cc, extractCommonAccessLogProperties).
func (a *AccessLogs) StreamAccessLogs(stream accesslogv3.AccessLogService_StreamAccessLogsServer) error {
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&accesslogv3.StreamAccessLogsResponse{})
		}
		if err != nil {
			return err
		}
		for _, e := range msg.GetHttpLogs().GetLogEntry() {
			a.entry(e)
		}
	}
}

// purgeStatus is the upstream answer that purges the token it was sent with.
const purgeStatus = 401

func (a *AccessLogs) entry(e *datav3.HTTPAccessLogEntry) {
	if e.GetResponse().GetResponseCode().GetValue() != purgeStatus {
		return
	}
	md := e.GetCommonProperties().GetMetadata().GetFilterMetadata()[ExtAuthzMetadataNamespace].GetFields()
	id := md[MetaTokenID].GetStringValue()
	if id == "" || !a.purger.Purge(id) {
		return
	}
	// The label takes configured service names only: the entry is Envoy's
	// word, and metrics labels stay bounded.
	service := md[MetaService].GetStringValue()
	if a.srv.Config().Routes.Service(service) == nil {
		service = "unknown"
	}
	if a.obs != nil {
		a.obs.ObservePurge(service)
	}
	a.log.Info("token purged: the backend answered 401", "service", service, "token_id", id)
}

// Package deploy has no code: its tests check what ships beside it. The
// Kubernetes manifests (kubernetes/), the Helm chart (helm/tokenauthz, as
// rendered by real Helm), the Envoy Gateway manifests (envoy-gateway/) and
// the Istio configuration (istio/) must decode strictly into their APIs'
// Go types and agree with tokenauthz's flags, ports, health endpoints and
// config format, and with each other; the Dockerfile and
// docker-compose.yaml at the repository root must build from and mount
// files that exist, and the compose example's Keycloak realm must hold the
// clients and scopes its tokenauthz config asks for. The alert rules
// (prometheus/) pass real promtool's checks and unit tests, the Grafana
// dashboard (grafana/) decodes with Grafana's schema, and the queries of
// both use only metrics and labels a running tokenauthz serves. See README.md for what
// each manifest is for.
package deploy

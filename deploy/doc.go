// Package deploy has no code: its tests check what ships beside it. The
// Kubernetes manifests (kubernetes/) and Istio configuration (istio/)
// must parse, use known kinds and agree with tokenauthz's flags, ports and
// config format; the Dockerfile and docker-compose.yaml at the repository
// root must build from and mount files that exist, and the compose
// example's Keycloak realm must hold the clients and scopes its tokenauthz
// config asks for. See README.md for what each manifest is for.
package deploy

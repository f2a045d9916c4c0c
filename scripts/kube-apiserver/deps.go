// Package main pins k8s.io/kubernetes (and, through the replace lines in go.mod, its staging modules at the
// matching v0.x tags) so that `go build k8s.io/kubernetes/cmd/kube-apiserver` works from the Go module proxy.
// scripts/install-kube-apiserver.sh builds the real kube-apiserver the Kubernetes e2e test runs.
package main

import _ "k8s.io/kubernetes/cmd/kube-apiserver/app"

func main() {}

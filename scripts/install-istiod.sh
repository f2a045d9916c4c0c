#!/usr/bin/env bash
# Installs istiod (pilot-discovery) and Istio's CRDs for bench/istiod.ts — the side-by-side benchmark against istiod.
# Not part of `npm test` or .ci/run: the bench is not part of the test suite.
#   - pilot-discovery: `go install istio.io/istio/pilot/cmd/pilot-discovery@VERSION` (into $(go env GOPATH)/bin)
#   - the CRDs: `go mod download istio.io/istio@VERSION`; the module's manifests/charts/base/files/crd-all.gen.yaml
# The real kube-apiserver + etcd come from scripts/install-kube-apiserver.sh (run by npm test; run it too on a clean
# machine). Prints the two paths bench/istiod.ts uses (it finds them itself at the defaults). Idempotent.
# ISTIO_VERSION overrides the module version. Istio's git tags are not v-prefixed, so the module proxy has no
# @1.29.0; this is the pseudo-version of the master commit `go install …@latest` resolved to on 2026-11-25.
set -euo pipefail

ISTIO_VERSION="${ISTIO_VERSION:-v0.0.0-20260827124520-eed52ebb66ad}"
GO="$(command -v go || echo /usr/local/go/bin/go)"
[[ -x "${GO}" ]] || { echo "install-istiod: no Go toolchain" >&2; exit 1; }
GOBIN="$("${GO}" env GOBIN)"; [[ -n "${GOBIN}" ]] || GOBIN="$("${GO}" env GOPATH)/bin"
MODCACHE="$("${GO}" env GOMODCACHE)"
CRDS="${MODCACHE}/istio.io/istio@${ISTIO_VERSION}/manifests/charts/base/files/crd-all.gen.yaml"

if [[ ! -f "${CRDS}" ]]; then
  echo "install-istiod: go mod download istio.io/istio@${ISTIO_VERSION}" >&2
  (cd "$(mktemp -d)" && GOFLAGS=-mod=mod "${GO}" mod download istio.io/istio@"${ISTIO_VERSION}") >&2
fi
if [[ ! -x "${GOBIN}/pilot-discovery" ]]; then
  echo "install-istiod: go install istio.io/istio/pilot/cmd/pilot-discovery@${ISTIO_VERSION} (several minutes, once)" >&2
  "${GO}" install istio.io/istio/pilot/cmd/pilot-discovery@"${ISTIO_VERSION}" >&2
fi
"$(dirname "${BASH_SOURCE[0]}")/install-kube-apiserver.sh" >&2
echo "PILOT_DISCOVERY=${GOBIN}/pilot-discovery"
echo "ISTIO_CRDS=${CRDS}"

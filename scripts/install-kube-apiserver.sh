#!/usr/bin/env bash
# Installs a real Kubernetes API server for test/e2e/kube-apiserver.test.ts: etcd from Debian (etcd-server) and
# kube-apiserver built from the Go module proxy (k8s.io/kubernetes, pinned in scripts/kube-apiserver/go.mod).
# The binary is cached outside the work tree (a fresh clone reuses it) and linked into .peers/. Idempotent.
# Exits non-zero when it cannot install; the test then skips and says why. MESHPILOT_SKIP_KUBE_APISERVER=1 skips.
set -euo pipefail

K8S_VERSION="v1.31.4"
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "${SCRIPT_DIR}/.." && pwd)"
PEERS="${ROOT}/.peers"
CACHE="${XDG_CACHE_HOME:-${HOME}/.cache}/meshpilot"
BIN="${CACHE}/kube-apiserver-${K8S_VERSION}"

if [[ "${MESHPILOT_SKIP_KUBE_APISERVER:-}" == "1" ]]; then
  echo "install-kube-apiserver: skipped (MESHPILOT_SKIP_KUBE_APISERVER=1)"; exit 0
fi

if ! command -v etcd >/dev/null 2>&1; then
  if [[ "$(id -u)" == "0" ]] && command -v apt-get >/dev/null 2>&1; then
    echo "install-kube-apiserver: installing etcd-server (Debian)" >&2
    (apt-get install -y -qq etcd-server >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq etcd-server >/dev/null 2>&1; }) || true
  fi
  command -v etcd >/dev/null 2>&1 || { echo "install-kube-apiserver: no etcd" >&2; exit 1; }
fi

if [[ ! -x "${BIN}" ]]; then
  GO="$(command -v go || echo /usr/local/go/bin/go)"
  [[ -x "${GO}" ]] || { echo "install-kube-apiserver: no Go toolchain" >&2; exit 1; }
  mkdir -p "${CACHE}"
  echo "install-kube-apiserver: building kube-apiserver ${K8S_VERSION} with $(${GO} version | cut -d' ' -f3) (a few minutes, once)" >&2
  (cd "${SCRIPT_DIR}/kube-apiserver" && GOFLAGS=-mod=mod "${GO}" build -o "${BIN}.tmp" k8s.io/kubernetes/cmd/kube-apiserver) >&2
  mv "${BIN}.tmp" "${BIN}"
fi

mkdir -p "${PEERS}"
ln -sf "${BIN}" "${PEERS}/kube-apiserver"
echo "install-kube-apiserver: kube-apiserver ${K8S_VERSION} at ${PEERS}/kube-apiserver, etcd $(etcd --version 2>/dev/null | head -1 | awk '{print $3}')"

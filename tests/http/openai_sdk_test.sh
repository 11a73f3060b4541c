#!/bin/bash
# Runs the official OpenAI SDK for Node against a real dserve_server started
# with --http_port (openai_sdk_test.mjs). The SDK comes from npm, pinned by
# tests/http/package-lock.json: `(cd tests/http && npm ci)` installs it
# (.ci/run does before bazel). Missing node or SDK FAILS the test, it never
# skips. Args: <dserve_server> <dserve_worker>.
set -euo pipefail
server="$(readlink -f "$1")"
worker="$(readlink -f "$2")"
# The runfile package.json is a link into the source tree; node_modules sits
# beside the real file (npm ci ran there).
src="$(dirname "$(readlink -f tests/http/package.json)")"
sdk="${src}/node_modules/openai"
if ! command -v node >/dev/null; then
  echo "FAIL: node not found (apt-get install nodejs npm; tools/install_deps.sh)" >&2
  exit 1
fi
if [[ ! -f "${sdk}/index.mjs" ]]; then
  echo "FAIL: the OpenAI SDK is not installed at ${sdk}; run: (cd tests/http && npm ci)" >&2
  exit 1
fi
want="$(node -p "require('${src}/package-lock.json').packages['node_modules/openai'].version")"
have="$(node -p "require('${sdk}/package.json').version")"
if [[ "${want}" != "${have}" ]]; then
  echo "FAIL: openai ${have} installed, package-lock.json pins ${want}; run: (cd tests/http && npm ci)" >&2
  exit 1
fi
echo "OpenAI SDK for Node ${have}, node $(node --version)"
exec node tests/http/openai_sdk_test.mjs "${server}" "${worker}" "${sdk}"

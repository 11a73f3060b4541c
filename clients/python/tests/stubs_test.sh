#!/bin/bash
# The committed stubs (clients/python/dserve_client/_proto) equal what
# generate_stubs.sh makes from the proto now; the packaged retry policy is
# the CLI's (clients/retry_service_config.json) and retries UNAVAILABLE. Fix a failure with: clients/python/generate_stubs.sh
set -euo pipefail
out="${TEST_TMPDIR:-$(mktemp -d)}/stubs"
clients/python/generate_stubs.sh proto "${out}"
status=0
for f in __init__.py diffusion_service_pb2.py diffusion_service_pb2_grpc.py; do
  if ! diff -u "clients/python/dserve_client/_proto/${f}" "${out}/${f}"; then
    echo "FAIL: clients/python/dserve_client/_proto/${f} is stale; run clients/python/generate_stubs.sh" >&2
    status=1
  fi
done
if ! cmp clients/retry_service_config.json clients/python/dserve_client/retry_service_config.json; then
  echo "FAIL: clients/python/dserve_client/retry_service_config.json differs from the CLI's clients/retry_service_config.json; copy it" >&2
  status=1
fi
/usr/bin/python3 - <<'PY' || status=1
import json
c = json.load(open("clients/python/dserve_client/retry_service_config.json"))
p = c["methodConfig"][0]["retryPolicy"]
assert p["retryableStatusCodes"] == ["UNAVAILABLE"], p
names = {n["method"] for n in c["methodConfig"][0]["name"]}
assert {"Generate", "SubmitJob", "GetJob", "WatchJob", "CancelJob"} <= names, names
PY
[[ ${status} == 0 ]] && echo PASSED
exit ${status}

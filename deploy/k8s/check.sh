#!/usr/bin/env bash
# Renders every kustomization under deploy/k8s (kubectl kustomize, offline),
# validates each object against the Kubernetes JSON schemas (npm package
# kubernetes-models; prometheus-operator's for ServiceMonitor) and checks
# that every dserve_* metric the dashboard, the HPA and the adapter rule use
# is one the server exports (the families named in server/serving_metrics.cc,
# plus _bucket/_sum/_count of its histograms). Run from anywhere; CI runs it.
set -euo pipefail
cd "$(dirname "$0")"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
command -v kubectl >/dev/null || { echo "k8s check: kubectl missing (tools/install_deps.sh installs it)" >&2; exit 1; }
if [[ ! -d validate/node_modules/kubernetes-models ]]; then
  (cd validate && npm ci --no-audit --no-fund --loglevel=error)
fi
fail=0
for dir in overlays/cpu overlays/gpu monitoring; do
  kubectl kustomize "$dir" > "$out/$(basename "$dir").yaml" 2> "$out/warnings" \
    || { cat "$out/warnings"; echo "FAIL: kubectl kustomize $dir"; fail=1; continue; }
  echo "rendered $dir: $(grep -c '^kind:' "$out/$(basename "$dir").yaml") objects"
done
node validate/validate.js "$out"/*.yaml || fail=1

# Metric names the server exports.
exported=$(grep -oE '"dserve_[a-z_]+"' ../../server/serving_metrics.cc | tr -d '"' | sort -u)
histograms=$(grep -B1 -A1 'GetHistogram(' ../../server/serving_metrics.cc | grep -oE '"dserve_[a-z_]+"' | tr -d '"' | sort -u)
names=$exported
for h in $histograms; do names+=$'\n'"${h}_bucket"$'\n'"${h}_sum"$'\n'"${h}_count"; done
used=$(cat monitoring/dserve-dashboard.json monitoring/prometheus-adapter-rules.yaml base/hpa.yaml \
  | grep -oE 'dserve_[a-z_]+' | grep -v '^dserve_grafana' | sort -u)
for m in $used; do
  if grep -qx "$m" <<<"$names"; then echo "ok   metric $m is exported"; else echo "FAIL metric $m is used but the server does not export it"; fail=1; fi
done
((fail == 0)) && echo "k8s check: all overlays render and validate; $(wc -w <<<"$used") metrics used, all exported"
exit "$fail"

#!/usr/bin/env bash
# The server end to end for tools/gpu/run_all.sh's "server" stage:
#   server_e2e.sh BIN DEVICES N LOGDIR MDFILE [--cpu_dry_run]
# starts BIN/server/dserve_server --devices=DEVICES --replicas=2 with the
# default model, sends N requests one after another through the CLI
# (BIN/clients/dserve generate), and appends p50/p90 latency, GPU memory
# (nvidia-smi, and the per-rank figures of /metrics) and the server's device
# line to MDFILE. The server's log goes to LOGDIR/server.log.
set -uo pipefail
bin=$1 devices=$2 n=$3 logs=$4 md=$5 dry=${6:-}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port); mport=$(free_port)
cli=("$bin/clients/dserve" --server=127.0.0.1:$port --progress=false)
cmd=("$bin/server/dserve_server" --port=$port --host=127.0.0.1 --metrics_port=$mport
     --devices=$devices --replicas=2 --worker_binary="$bin/worker/dserve_worker")
echo "=== server: ${cmd[*]}"
"${cmd[@]}" >"$logs/server.log" 2>&1 &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null' EXIT
ready=0
for _ in $(seq 1 180); do
  if ! kill -0 $server 2>/dev/null; then break; fi
  if "${cli[@]}" info 2>/dev/null | grep -qi "replica [0-9]*: ready"; then ready=1; break; fi
  sleep 1
done
if (( !ready )); then
  echo "=== server: not ready; its log:"; tail -30 "$logs/server.log"
  printf -- '- server (%s): did not become ready (see server.log)\n' "${cmd[*]}" >>"$md"
  exit 1
fi
# Both replicas READY before timing (each loads the model on the GPU).
for _ in $(seq 1 120); do
  [[ $("${cli[@]}" info 2>/dev/null | grep -ci "replica [0-9]*: ready") -ge 2 ]] && break; sleep 1
done
lat=()
fails=0
for i in $(seq 1 "$n"); do
  start=$(date +%s%N)
  if "${cli[@]}" generate --prompt "a red circle on a blue background, top left" \
       --seed "$i" --out "/tmp/dserve_gpu_e2e_$i.png" >/dev/null; then
    lat+=($(( ($(date +%s%N) - start) / 1000000 )))
  else
    fails=$((fails + 1))
  fi
done
sorted=($(printf '%s\n' "${lat[@]}" | sort -n))
count=${#sorted[@]}
p50=NA; p90=NA
if (( count > 0 )); then
  p50=${sorted[$(( (count - 1) * 50 / 100 ))]}; p90=${sorted[$(( (count - 1) * 90 / 100 ))]}
fi
gpu_mem=$( [[ -z $dry ]] && nvidia-smi --query-gpu=memory.used,memory.total --format=csv,noheader 2>/dev/null | head -1 || echo "n/a (CPU)")
metrics=$(python3 -c "import urllib.request as u; print(u.urlopen('http://127.0.0.1:$mport/metrics', timeout=5).read().decode())" 2>/dev/null |
  grep -E '^dserve_rank_(gpu_memory|device)' | head -12)
echo "=== server: $count ok, $fails failed; p50 ${p50} ms, p90 ${p90} ms; GPU memory $gpu_mem"
{
  printf -- '- server e2e: `%s`; %s x `dserve generate` (default model, 32x32, 20 steps, CFG 4), one at a time\n' "${cmd[*]}" "$n"
  printf '    %s ok, %s failed; latency p50 %s ms, p90 %s ms; nvidia-smi memory.used, total: %s\n' "$count" "$fails" "$p50" "$p90" "$gpu_mem"
  grep -h -E '\[server\] devices' "$logs/server.log" | head -1 | sed 's/^/    /'
  printf '%s\n' "$metrics" | sed '/^$/d; s/^/    /'
} >>"$md"
"${cli[@]}" info >>"$logs/server.log" 2>&1
kill -TERM $server; wait $server
rc=$?
trap - EXIT
echo "=== server: drained, rc=$rc"
(( fails == 0 && rc == 0 ))

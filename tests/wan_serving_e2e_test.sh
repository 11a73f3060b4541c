#!/usr/bin/env bash
# Wan2.1 through the whole serving path: a tiny random-weight checkpoint in
# both published layouts (tools/wan/make_wan_checkpoint.py), each served by a
# real dserve_server + dserve_worker from --model_dir, called with the CLI:
# a 5-frame MP4 that ffprobe reads back (h264, 48x32, 5 frames, 16 fps), and
# the RAW_TENSOR of the same request, byte-identical between the two layouts
# at the same flow shift (the diffusers layout's default shift comes from its
# scheduler_config.json, so the test names it).
#   wan_serving_e2e_test.sh <server> <worker> <cli> <spiece.model> <writer.py...>
set -euo pipefail
server=$1 worker=$2 cli=$3 spiece=$4
writer=""
for f in "${@:5}"; do [[ $f == *make_wan_checkpoint.py ]] && writer=$f; done
out=$(mktemp -d "${TEST_TMPDIR:-/tmp}/wan_e2e.XXXXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$out"; }
trap cleanup EXIT
command -v ffprobe >/dev/null || { echo "ffprobe missing (Debian: ffmpeg)" >&2; exit 1; }

# The tokenizer's 400 pieces must fit the text encoder's vocabulary.
/usr/bin/python3 "$writer" --out="$out/ck" --layout=both --preset=tiny \
    --t5_vocab=512 --seed=11 --dtype=fp32 --spiece="$spiece" >/dev/null

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
for layout in wan diffusers; do
  port=$(free_port)
  "$server" --replicas=1 --host=127.0.0.1 --port="$port" \
      --model_dir="$out/ck/$layout" --worker_binary="$worker" \
      >"$out/server_$layout.log" 2>&1 &
  pids+=($!)
  ok=""
  for _ in $(seq 1 120); do
    if "$cli" --server="127.0.0.1:$port" models >"$out/models_$layout.txt" 2>/dev/null; then ok=1; break; fi
    sleep 0.5
  done
  [[ -n $ok ]] || { cat "$out/server_$layout.log" >&2; echo "FAIL: $layout server not ready" >&2; exit 1; }
  common=(--server="127.0.0.1:$port" generate --prompt "a red fox runs through snow"
          --width 48 --height 32 --frames 5 --steps 4 --seed 7 --flow_shift 5)
  "$cli" "${common[@]}" --out "$out/$layout.mp4" >"$out/mp4_$layout.txt" 2>&1 ||
      { cat "$out/mp4_$layout.txt" "$out/server_$layout.log" >&2; exit 1; }
  "$cli" "${common[@]}" --format raw --out "$out/$layout.raw" >/dev/null 2>&1
  probe=$(ffprobe -v error -select_streams v:0 -count_frames \
      -show_entries stream=codec_name,width,height,nb_read_frames,r_frame_rate \
      -of csv=p=0 "$out/$layout.mp4")
  echo "$layout: $probe"
  [[ $probe == "h264,48,32,16/1,5" ]] || { echo "FAIL: $layout mp4 is '$probe'" >&2; exit 1; }
  size=$(stat -c %s "$out/$layout.raw")
  [[ $size -eq $((5 * 32 * 48 * 3 * 4)) ]] || { echo "FAIL: raw is $size bytes" >&2; exit 1; }
  kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true
done
cmp "$out/wan.raw" "$out/diffusers.raw" ||
    { echo "FAIL: the two layouts gave different videos" >&2; exit 1; }
echo "wan and diffusers layouts: identical RAW_TENSOR, valid MP4"

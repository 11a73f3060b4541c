#!/bin/bash
# Every rank of 1 rank / tp=2 / pp=2, with and without the text encoder, each
# loaded as its own process by rank_memory_bench (so VmHWM is per rank), one
# at a time. Prints a markdown table (GiB = 2^30 bytes).
#
#   bazel build //bench:rank_memory_bench
#   bench/rank_memory_bench.sh bazel-bin/bench/rank_memory_bench MODEL_DIR \
#       [MESHES...]      (default: "" tp=2 pp=2)
set -euo pipefail
bench="$1"
dir="$2"
shift 2
meshes=("$@")
if [[ ${#meshes[@]} -eq 0 ]]; then meshes=("" "tp=2" "pp=2"); fi

gib() { awk -v b="$1" 'BEGIN { printf "%.2f", b / 1073741824 }'; }
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }

echo "| mesh | rank | text encoder | load s | DiT held GiB | DiT expected GiB | text enc. GiB | VAE GiB | peak RSS (VmHWM) GiB | RSS after load GiB |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for mesh in "${meshes[@]}"; do
  world=1
  for kv in ${mesh//,/ }; do world=$((world * ${kv#*=})); done
  for ((rank = 0; rank < world; ++rank)); do
    for te in true false; do
      line=$("$bench" --model_dir="$dir" --mesh="$mesh" --rank="$rank" \
                      --text_encoder="$te")
      echo "$line" >&2
      echo "| ${mesh:-1 rank} | $rank | $te | $(field load_s "$line") |" \
           "$(gib "$(field dit_bytes "$line")") |" \
           "$(gib "$(field dit_bytes_expected "$line")") |" \
           "$(gib "$(field text_encoder_bytes "$line")") |" \
           "$(gib "$(field decoder_bytes "$line")") |" \
           "$(gib $(( $(field vm_hwm_kb "$line") * 1024 )))" \
           "| $(gib $(( $(field vm_rss_kb "$line") * 1024 ))) |"
    done
  done
done

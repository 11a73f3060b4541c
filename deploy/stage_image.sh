#!/usr/bin/env bash
# Stages the runtime image's files (deploy/image_files.txt) under DEST.
#   deploy/stage_image.sh MANIFEST BIN_ROOT SRC_ROOT DEST
# BIN_ROOT: Bazel's output tree (bazel-bin); SRC_ROOT: the source tree.
set -euo pipefail
manifest=$1 bin_root=$2 src_root=$3 dest=$4
while read -r root path target; do
  [[ -z $root || $root == \#* ]] && continue
  case $root in
    bin) from=$bin_root/$path ;;
    src) from=$src_root/$path ;;
    *) echo "stage_image: $manifest: unknown root '$root' (bin or src)" >&2; exit 1 ;;
  esac
  [[ -f $from ]] || { echo "stage_image: missing $from" >&2; exit 1; }
  mkdir -p "$dest/$(dirname "$target")"
  cp -L "$from" "$dest/$target"
  chmod u+w "$dest/$target"
done < "$manifest"

#!/usr/bin/env bash
# Write a container image as a docker-archive tarball (what `docker save` writes and what
# `ctr images import` and `docker load` read) from directories, without docker, buildah or a
# registry: one layer per directory, in order.
#
#   scripts/mkimage.sh OUT.tar REF CONFIG_JSON LAYER_DIR...
#
# CONFIG_JSON is the image's "config" object (User, Entrypoint, Cmd, Env, ExposedPorts, ...).
# Layers are reproducible: entries sorted by name, owned by 0:0, mtime 0, so the same input gives
# the same digests.
set -euo pipefail
[[ $# -ge 4 ]] || { echo "usage: $0 OUT.tar REF CONFIG_JSON LAYER_DIR..." >&2; exit 2; }
out=$1 ref=$2 config=$3
shift 3
w="$(mktemp -d)"
trap 'rm -rf "$w"' EXIT
diff_ids=() layers=() history=()
for dir in "$@"; do
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 --format=posix \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    -C "$dir" -cf "$w/layer.tar" .
  d="$(sha256sum "$w/layer.tar" | cut -d' ' -f1)"
  mkdir -p "$w/$d"
  mv "$w/layer.tar" "$w/$d/layer.tar"
  diff_ids+=("\"sha256:$d\"")
  layers+=("\"$d/layer.tar\"")
  history+=("{\"created\":\"1970-01-01T00:00:00Z\",\"created_by\":\"scripts/mkimage.sh $(basename "$dir")\"}")
done
join() { local IFS=,; echo "$*"; }
printf '{"architecture":"amd64","os":"linux","created":"1970-01-01T00:00:00Z","config":%s,"rootfs":{"type":"layers","diff_ids":[%s]},"history":[%s]}' \
  "$config" "$(join "${diff_ids[@]}")" "$(join "${history[@]}")" > "$w/config.json"
c="$(sha256sum "$w/config.json" | cut -d' ' -f1)"
mv "$w/config.json" "$w/$c.json"
printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":[%s]}]\n' "$c" "$ref" "$(join "${layers[@]}")" > "$w/manifest.json"
entries=(manifest.json "$c.json")
for l in "${layers[@]}"; do l="${l//\"/}"; entries+=("${l%/layer.tar}"); done
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$w" -cf "$out.tmp" "${entries[@]}"
mv -f "$out.tmp" "$out"

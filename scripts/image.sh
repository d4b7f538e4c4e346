#!/usr/bin/env bash
# Build the gpu-admission image from the repository's Dockerfile without docker: the same final
# stage, as a docker-archive tarball (`docker load` / `ctr images import` read it).
#
#   scripts/image.sh [--src DIR] [--out FILE] [--import CONTAINERD_SOCKET]
#   scripts/image.sh --ref      print the image reference deploy/ names, and nothing else
#
# - The build stage's binary: the `cargo build ...` command and `ENV RUSTFLAGS` are read from the
#   Dockerfile's build stage and run natively (for this machine's host triple, as the Dockerfile
#   does with `rustc -vV`), in DIR (default: this checkout), with
#   CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$cache/target-image}. Every cargo call goes through
#   `flock -o /tmp/cargo.lock` (2-core machines: one cargo at a time).
# - The final stage must be `FROM scratch`; its COPY (heredoc or --from=build), USER, EXPOSE, ENV,
#   LABEL, ENTRYPOINT and CMD lines are interpreted; anything else is an error, so the two builds
#   cannot drift apart silently. One layer per COPY, as docker makes them.
# - The image reference is the one deploy/ names, in one place: the `images:` entry of
#   deploy/base/kustomization.yaml (name, optional newName, newTag). The release workflow
#   (.github/workflows/release.yml) pushes the same reference, and checks it with --ref.
# - The binary must be statically linked (no ELF interpreter): checked.
#
# Output: ${GPU_ADMISSION_CACHE:-$HOME/.cache/gpu-admission}/image/gpu-admission.tar (or --out).
# The tarball's path is the LAST line of stdout; progress goes to stderr.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
log() { printf '[image] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# The `images:` entry of deploy/base/kustomization.yaml: NAME[:TAG], newName replacing NAME.
deploy_ref() {
  awk '
    /^images:/ { inside = 1; next }
    inside && /^[^[:space:]#-]/ { inside = 0 }
    inside && /^[[:space:]]*-?[[:space:]]*name:/ { sub(/.*name:[[:space:]]*/, ""); name = $1 }
    inside && /^[[:space:]]*newName:/ { sub(/.*newName:[[:space:]]*/, ""); new = $1 }
    inside && /^[[:space:]]*newTag:/ { sub(/.*newTag:[[:space:]]*/, ""); gsub(/"/, ""); tag = $1 }
    END { if (name == "" || tag == "") exit 1; print (new != "" ? new : name) ":" tag }
  ' "$repo/deploy/base/kustomization.yaml"
}
ref="$(deploy_ref)" || die "no images: entry with name and newTag in deploy/base/kustomization.yaml"

src="$repo" out="" import=""
while [[ $# -gt 0 ]]; do
  case $1 in
    --ref) echo "$ref"; exit 0 ;;
    --src) src="$(cd "$2" && pwd)"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --import) import="$2"; shift 2 ;;
    *) die "unknown argument $1" ;;
  esac
done
cache="${GPU_ADMISSION_CACHE:-$HOME/.cache/gpu-admission}"
out="${out:-$cache/image/gpu-admission.tar}"
mkdir -p "$(dirname "$out")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$cache/target-image}"
dockerfile="$src/Dockerfile"
[[ -f "$dockerfile" ]] || die "no Dockerfile in $src"

# --- Split the Dockerfile into stages (continuation lines joined; heredocs kept as lines). ---
mapfile -t raw < "$dockerfile"
stages=() # index of each FROM line in `lines`
lines=()
i=0
while [[ $i -lt ${#raw[@]} ]]; do
  l="${raw[$i]}"
  if [[ "$l" =~ ^[[:space:]]*# || -z "${l//[[:space:]]/}" ]]; then i=$((i + 1)); continue; fi
  while [[ "$l" == *\\ && $((i + 1)) -lt ${#raw[@]} ]]; do
    i=$((i + 1)); l="${l%\\} ${raw[$i]}"
  done
  if [[ "$l" =~ \<\<([A-Za-z_]+) ]]; then
    delim="${BASH_REMATCH[1]}" body=""
    i=$((i + 1))
    while [[ $i -lt ${#raw[@]} && "${raw[$i]}" != "$delim" ]]; do body+="${raw[$i]}"$'\n'; i=$((i + 1)); done
    [[ $i -lt ${#raw[@]} ]] || die "unterminated heredoc <<$delim"
    l="$l"$'\x1f'"$body"
  fi
  [[ "$l" =~ ^[[:space:]]*FROM[[:space:]] ]] && stages+=("${#lines[@]}")
  lines+=("$l")
  i=$((i + 1))
done
[[ ${#stages[@]} -ge 2 ]] || die "expected a build stage and a final stage in $dockerfile"
final_start=${stages[-1]}
build_start=${stages[-2]}

# --- The build stage: RUSTFLAGS, the cargo command, and where its output lands. ---
rustflags="" cargo_cmd="" bin_name="" build_path="" context=()
for ((k = build_start; k < final_start; k++)); do
  l="${lines[$k]}"
  if [[ "$l" =~ ^[[:space:]]*COPY[[:space:]] && "$l" != *--from=* ]]; then
    read -r -a words <<< "$l"
    context+=("${words[@]:1:${#words[@]}-2}")
  fi
  if [[ "$l" =~ ^[[:space:]]*ENV[[:space:]]+RUSTFLAGS=\"([^\"]*)\" ]]; then rustflags="${BASH_REMATCH[1]}"; fi
  if [[ "$l" =~ (cargo[[:space:]]+build[^\&]*) ]]; then cargo_cmd="${BASH_REMATCH[1]}"; fi
  if [[ "$l" =~ cp[[:space:]]+\"target/\$target/release/([A-Za-z0-9_-]+)\"[[:space:]]+(/[^[:space:]]+) ]]; then
    bin_name="${BASH_REMATCH[1]}" build_path="${BASH_REMATCH[2]}"
  fi
done
[[ -n "$cargo_cmd" && -n "$bin_name" ]] || die "could not read the cargo build command and its cp from the build stage"
host="$(rustc -vV | sed -n 's/^host: //p')"
cargo_cmd="${cargo_cmd//\"\$target\"/$host}"
cargo_cmd="${cargo_cmd%"${cargo_cmd##*[![:space:]]}"}"
read -r -a cargo_argv <<< "$cargo_cmd"
[[ "${cargo_argv[0]}" == cargo ]] || die "unexpected build command: $cargo_cmd"
# cargo decides freshness by mtimes, and a tree unpacked from an archive has old ones: when what
# the build stage copies (its COPY sources) is not what the last image build saw, rebuild the
# package (its dependencies stay cached).
stamp="$CARGO_TARGET_DIR/image-build-context.sha256"
sum="$(cd "$src" && find "${context[@]}" -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)"
if [[ "$(cat "$stamp" 2>/dev/null)" != "$sum" ]]; then
  (cd "$src" && flock -o /tmp/cargo.lock cargo clean --release --target "$host" -p "$bin_name" >&2 2>/dev/null) || true
fi
log "build stage: RUSTFLAGS='$rustflags' ${cargo_cmd} (in $src, CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
t0=$SECONDS
(cd "$src" && RUSTFLAGS="$rustflags" flock -o /tmp/cargo.lock "${cargo_argv[@]}") >&2 || die "cargo build failed"
mkdir -p "$CARGO_TARGET_DIR"
echo "$sum" > "$stamp"
binary="$CARGO_TARGET_DIR/$host/release/$bin_name"
[[ -x "$binary" ]] || die "no binary at $binary"
log "binary built (or up to date) in $((SECONDS - t0))s: $(du -h "$binary" | cut -f1) $binary"
if LC_ALL=C readelf -lW "$binary" | grep -q 'program interpreter'; then
  die "$binary is dynamically linked (has an ELF interpreter); the image has no libc"
fi
LC_ALL=C readelf -d "$binary" 2>/dev/null | grep -q NEEDED && die "$binary needs shared libraries"

# --- The final stage. ---
w="$(mktemp -d)"
trap 'rm -rf "$w"' EXIT
layer_dirs=() user="" entrypoint="null" cmd="null" env=() ports=() labels=()
n=0
for ((k = final_start; k < ${#lines[@]}; k++)); do
  l="${lines[$k]}" body=""
  if [[ "$l" == *$'\x1f'* ]]; then body="${l#*$'\x1f'}"; l="${l%%$'\x1f'*}"; fi
  read -r -a words <<< "$l"
  instr="${words[0]^^}"
  case "$instr" in
    FROM)
      [[ "${words[1]}" == scratch ]] || die "final stage must be FROM scratch, not ${words[1]}" ;;
    COPY)
      n=$((n + 1)); d="$w/layer$n"; mkdir -p "$d"
      chmod_opt="" from="" args=()
      for word in "${words[@]:1}"; do
        case "$word" in
          --chmod=*) chmod_opt="${word#--chmod=}" ;;
          --from=*) from="${word#--from=}" ;;
          --*) die "unsupported COPY option $word" ;;
          *) args+=("$word") ;;
        esac
      done
      [[ ${#args[@]} -eq 2 ]] || die "COPY needs exactly one source and one destination: $l"
      dest="${args[1]}"
      mkdir -p "$d$(dirname "$dest")"
      if [[ "${args[0]}" == \<\<* ]]; then
        printf '%s' "$body" > "$d$dest"
        chmod "${chmod_opt:-0644}" "$d$dest"
      elif [[ -n "$from" ]]; then
        [[ "${args[0]}" == "$build_path" ]] || die "COPY --from=$from ${args[0]}: the build stage only produces $build_path"
        cp "$binary" "$d$dest"
        chmod "${chmod_opt:-0755}" "$d$dest"
      else
        die "COPY from the build context is not supported in the final stage: $l"
      fi
      find "$d" -type d -exec chmod 0755 {} +
      layer_dirs+=("$d") ;;
    USER) user="${words[1]}" ;;
    EXPOSE) for p in "${words[@]:1}"; do [[ "$p" == */* ]] || p="$p/tcp"; ports+=("\"$p\":{}"); done ;;
    ENV)
      rest="${l#*ENV}"; rest="${rest#"${rest%%[![:space:]]*}"}"
      [[ "$rest" =~ ^([A-Za-z_][A-Za-z0-9_]*)=\"?([^\"]*)\"?$ ]] || die "unsupported ENV form: $l"
      env+=("\"${BASH_REMATCH[1]}=${BASH_REMATCH[2]}\"") ;;
    LABEL)
      rest="${l#*LABEL}"; rest="${rest#"${rest%%[![:space:]]*}"}"
      [[ "$rest" =~ ^([A-Za-z0-9._/-]+)=\"?([^\"]*)\"?$ ]] || die "unsupported LABEL form: $l"
      labels+=("\"${BASH_REMATCH[1]}\":\"${BASH_REMATCH[2]}\"") ;;
    ENTRYPOINT) entrypoint="${l#*ENTRYPOINT}"; [[ "$entrypoint" =~ ^[[:space:]]*\[ ]] || die "ENTRYPOINT must be exec (JSON) form" ;;
    CMD) cmd="${l#*CMD}"; [[ "$cmd" =~ ^[[:space:]]*\[ ]] || die "CMD must be exec (JSON) form" ;;
    *) die "final stage instruction $instr is not supported by scripts/image.sh: $l" ;;
  esac
done
[[ ${#layer_dirs[@]} -gt 0 ]] || die "final stage copies nothing"
# BuildKit gives every image this PATH unless the Dockerfile sets one.
has_path=0; for e in "${env[@]}"; do [[ "$e" == \"PATH=* ]] && has_path=1; done
[[ $has_path -eq 1 ]] || env=("\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\"" "${env[@]}")
join() { local IFS=,; echo "$*"; }
config="{\"User\":\"$user\",\"ExposedPorts\":{$(join "${ports[@]}")},\"Env\":[$(join "${env[@]}")],\"Entrypoint\":$(echo $entrypoint),\"Cmd\":$(echo $cmd),\"WorkingDir\":\"/\",\"Labels\":{$(join "${labels[@]}")}}"
"$repo/scripts/mkimage.sh" "$out" "$ref" "$config" "${layer_dirs[@]}"
log "image $ref: $(du -h "$out" | cut -f1) tarball ($(stat -c %s "$out") bytes), $(find "${layer_dirs[@]}" -type f | wc -l) files in ${#layer_dirs[@]} layers"
if [[ -n "$import" ]]; then
  ctr --address "$import" -n k8s.io images import "$out" >&2
  log "imported into containerd ($import, namespace k8s.io) as $ref"
fi
echo "$out"

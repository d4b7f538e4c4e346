#!/usr/bin/env bash
# Build (once) actionlint, the GitHub Actions workflow linter that tests/release.rs runs on
# .github/workflows/, from the Go module proxy with `go install`, and make sure shellcheck (the
# Debian package, which actionlint runs on every `run:` script) is installed.
#
# Output: ${GPU_ADMISSION_CACHE:-$HOME/.cache/gpu-admission}/actionlint/<version>/actionlint,
# printed as the LAST line of stdout (progress on stderr). Built only when missing.
#
# Overridable env: ACTIONLINT_VERSION, GPU_ADMISSION_CACHE, GO (path to go).
set -euo pipefail
ACTIONLINT_VERSION="${ACTIONLINT_VERSION:-v1.7.12}"
log() { printf '[actionlint] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

if [[ -z "${GO:-}" ]]; then
  GO="$(command -v go || true)"
  [[ -n "$GO" || ! -x /usr/local/go/bin/go ]] || GO=/usr/local/go/bin/go
fi
dir="${GPU_ADMISSION_CACHE:-$HOME/.cache/gpu-admission}/actionlint/$ACTIONLINT_VERSION"
bin="$dir/actionlint"

if ! command -v shellcheck >/dev/null 2>&1; then
  [[ $(id -u) -eq 0 ]] || die "shellcheck is missing (apt-get install shellcheck, as root)"
  log "installing the Debian package shellcheck"
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends shellcheck; } >&2 ||
    die "apt-get install shellcheck failed"
fi

if [[ ! -x "$bin" ]]; then
  [[ -n "$GO" ]] || die "go toolchain not found (set GO=/path/to/go or put go on PATH)"
  mkdir -p "$dir"
  exec 9>"$dir/.lock"
  flock 9
  if [[ ! -x "$bin" ]]; then
    log "go install github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"
    tmp="$(mktemp -d "$dir/.build.XXXXXX")"
    CGO_ENABLED=0 GOTOOLCHAIN=local GOWORK=off GOFLAGS=-mod=mod GOBIN="$tmp" \
      "$GO" install -trimpath -ldflags="-s -w" "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION" >&2 ||
      { rm -rf "$tmp"; die "go install failed"; }
    mv -f "$tmp/actionlint" "$bin"
    rm -rf "$tmp"
  fi
fi
log "$("$bin" -version | head -n 1) at $bin; $(shellcheck --version | sed -n 's/^version: /shellcheck /p')"
echo "$bin"

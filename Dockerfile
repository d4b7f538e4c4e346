# syntax=docker/dockerfile:1
# gpu-admission: one static binary FROM scratch, running as nonroot (65532). Nothing else in the
# image: no shell, no libc, no package manager, no CA bundle (in-cluster config reads the
# ServiceAccount's ca.crt; the webhook makes no other outbound call).
#
#   docker build -t ghcr.io/gpu-admission/gpu-admission:0.1.0 .
#
# A release (.github/workflows/release.yml, on a version tag) builds this file for linux/amd64
# and linux/arm64 on a runner of each architecture (the build stage compiles for its own host).
#
# Without docker, scripts/image.sh builds the same final stage from this file: it runs the build
# stage's `cargo build` (read from the RUN line below) natively and interprets the final stage's
# COPY/USER/EXPOSE/ENTRYPOINT/CMD lines into a docker-archive tarball. The real-cluster suite runs
# that image (README "The image"). Keep the final stage to the instructions image.sh knows (it
# fails on any other).

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src
# Only what the build reads (Cargo.toml declares the benches, so they must be present; cargo
# reads the manifests of the other workspace members, testkit and tools, and builds none of them).
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY policies ./policies
COPY benches ./benches
COPY testkit ./testkit
COPY tools ./tools
# A static glibc binary (static-pie). RUSTFLAGS apply to the --target artefacts only, so build
# scripts and proc-macros stay dynamic.
ENV RUSTFLAGS="-C target-feature=+crt-static"
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    target="$(rustc -vV | sed -n 's/^host: //p')" \
    && cargo build --release --locked --target "$target" --bin gpu-admission \
    && cp "target/$target/release/gpu-admission" /gpu-admission

FROM scratch
# The nonroot user, by name for tools that look it up (the Deployment sets the numeric ids).
COPY --chmod=0644 <<EOF /etc/passwd
nonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin
EOF
COPY --chmod=0644 <<EOF /etc/group
nonroot:x:65532:
EOF
COPY --from=build /gpu-admission /usr/local/bin/gpu-admission
USER 65532:65532
# GitHub's registry links the package to its repository by this label.
LABEL org.opencontainers.image.source="https://github.com/gpu-admission/gpu-admission"
# 8443: webhook (HTTPS); 8080: admin (/livez, /readyz, /metrics).
EXPOSE 8443 8080
ENTRYPOINT ["/usr/local/bin/gpu-admission"]
CMD ["serve"]

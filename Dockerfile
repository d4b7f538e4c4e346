# syntax=docker/dockerfile:1
# gpu-admission: one static binary on distroless/static, running as nonroot (65532).
#
#   docker build -t gpu-admission:dev .
#
# The binary is linked statically against glibc (crt-static) for the build's own architecture:
# the runtime image has no libc, no shell and no package manager. README "Deploying" says how
# this file was checked (CI cannot build images).

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src
# Only what the build reads (Cargo.toml declares the benches, so they must be present).
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY policies ./policies
COPY benches ./benches
# RUSTFLAGS apply to the --target artefacts only, so build scripts and proc-macros stay dynamic.
ENV RUSTFLAGS="-C target-feature=+crt-static"
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    target="$(rustc -vV | sed -n 's/^host: //p')" \
    && cargo build --release --locked --target "$target" --bin gpu-admission \
    && cp "target/$target/release/gpu-admission" /gpu-admission

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /gpu-admission /usr/local/bin/gpu-admission
USER 65532:65532
# 8443: webhook (HTTPS); 8080: admin (/livez, /readyz, /metrics).
EXPOSE 8443 8080
ENTRYPOINT ["/usr/local/bin/gpu-admission"]
CMD ["serve"]

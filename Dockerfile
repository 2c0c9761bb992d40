# syntax=docker/dockerfile:1
# coderd: `docker build -t coderd .` then
# `docker run -p 3000:3000 -v coderd-data:/data -e CODER_ACCESS_URL=http://localhost:3000 coderd`.

# ---- build ------------------------------------------------------------------
FROM rust:1.95-bookworm AS builder
WORKDIR /src
# askama.toml tells the page templates' compiler where they are (src/http/pages/html).
COPY Cargo.toml Cargo.lock askama.toml ./
# .cargo holds build settings (SQLite's compile flags); tests and benches are not built, but
# Cargo.toml names their targets and cargo refuses a manifest whose targets are missing.
COPY .cargo ./.cargo
COPY src ./src
COPY migrations ./migrations
COPY tests ./tests
COPY benches ./benches
# The cache mounts keep the registry and compiled dependencies between builds; the binary is
# copied out because the target directory is not part of the image layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin coder \
    && install -m 0755 target/release/coder /usr/local/bin/coder

# ---- runtime ----------------------------------------------------------------
FROM debian:bookworm-slim
# ca-certificates: TLS to PostgreSQL and other servers; curl: the healthcheck;
# bubblewrap: the sandbox workspace agents run in; util-linux (setpriv, prlimit) and e2fsprogs
# (mkfs.ext4): per-workspace users, limits and disks when the server runs as root.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl bubblewrap util-linux e2fsprogs \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 1000 coder \
    && useradd --system --uid 1000 --gid coder --home-dir /home/coder --create-home --shell /usr/sbin/nologin coder \
    && mkdir -p /data \
    && chown coder:coder /data
COPY --from=builder /usr/local/bin/coder /usr/local/bin/coder

ENV CODER_DATA_DIR=/data \
    CODER_HTTP_ADDRESS=0.0.0.0:3000
VOLUME ["/data"]
EXPOSE 3000
USER coder:coder
WORKDIR /home/coder

# Probes the default port; change it here too if you change CODER_HTTP_ADDRESS.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD curl -fsS http://127.0.0.1:3000/healthz || exit 1

ENTRYPOINT ["coder"]
CMD ["server"]

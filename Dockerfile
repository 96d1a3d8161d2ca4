# syntax=docker/dockerfile:1
# idm-sync: one image, every role (serve, migrate, …) chosen by the command.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY crates ./crates
COPY migrations ./migrations
COPY benches ./benches
COPY tests ./tests
# The crate registry and the target directory live in BuildKit caches across builds, so a
# source change recompiles our crates, not the ~400 dependencies. The binaries are copied out
# of the cache in the same step (a cache mount is not part of the layer).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin idm-sync --bin sf-emulator \
    && mkdir -p /out && cp target/release/idm-sync target/release/sf-emulator /out/

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home /srv/idm-sync idm
WORKDIR /srv/idm-sync
# The data directory (the self-signed HTTPS certificate) belongs to the service user, so a named
# volume mounted there starts out writable by it.
RUN mkdir -p /srv/idm-sync/data && chown idm /srv/idm-sync/data
COPY --from=build /out/idm-sync /usr/local/bin/idm-sync
COPY --from=build /out/sf-emulator /usr/local/bin/sf-emulator
COPY conf ./conf
USER idm
ENV IDM_CONF_DIR=/srv/idm-sync/conf IDM_LISTEN=0.0.0.0:8080 IDM_DATA_DIR=/srv/idm-sync/data IDM_LOG_FORMAT=json
EXPOSE 8080 8443
ENTRYPOINT ["idm-sync"]
CMD ["serve"]

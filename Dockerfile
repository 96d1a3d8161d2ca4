# idm-sync: one image, every role (serve, migrate, …) chosen by the command.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
COPY benches ./benches
COPY tests ./tests
RUN cargo build --release --locked --bin idm-sync --bin sf-emulator

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home /srv/idm-sync idm
WORKDIR /srv/idm-sync
COPY --from=build /src/target/release/idm-sync /usr/local/bin/idm-sync
COPY --from=build /src/target/release/sf-emulator /usr/local/bin/sf-emulator
COPY conf ./conf
USER idm
ENV IDM_CONF_DIR=/srv/idm-sync/conf IDM_LISTEN=0.0.0.0:8080 IDM_LOG_FORMAT=json
EXPOSE 8080
ENTRYPOINT ["idm-sync"]
CMD ["serve"]

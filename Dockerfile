# signpost in a container: a multi-stage build (the toolchain stays in the
# first stage), a small Debian runtime, a non-root user.
#
#   docker build -t signpost .
#   docker run --rm -p 5353:5353/udp -p 5353:5353/tcp -p 9053:9053 signpost    # the demo
#   docker run -d --name signpost -p 53:53/udp -p 53:53/tcp \
#     -v /etc/signpost:/etc/signpost:ro -v /var/lib/GeoIP:/var/lib/GeoIP:ro \
#     signpost serve --config /etc/signpost/signpost.toml
#
# (your signpost.toml listens on 0.0.0.0:53 or [::]:53 inside the container)
#   docker kill -s HUP signpost        # reload the configuration
#
# Docker (20.10 and later) lets unprivileged users bind ports below 1024
# inside a container, so port 53 needs no capability here.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin signpost \
 && strip target/release/signpost

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --no-create-home --shell /usr/sbin/nologin signpost \
 && install -d -o signpost -g signpost /var/lib/signpost
COPY --from=build /src/target/release/signpost /usr/local/bin/signpost
# the example configuration, zone and demo GeoIP database; mount your own
# over /etc/signpost
COPY signpost.toml /etc/signpost/signpost.toml
COPY zones /etc/signpost/zones
COPY geoip/demo-city.mmdb /etc/signpost/geoip/demo-city.mmdb
USER signpost
ENV NO_COLOR=1
EXPOSE 53/udp 53/tcp 9053/tcp
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/signpost"]
CMD ["demo", "--dns", "0.0.0.0:5353", "--admin", "0.0.0.0:9053"]

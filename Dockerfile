# wagate in a container: built as the release (`cargo build --release --locked -p wagate`, the
# full binary with the real WhatsApp engine), run as a non-root user with its data in /data.
#
#   docker build -t wagate .
#   docker run -p 3000:3000 -v wagate-data:/data wagate

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p wagate \
    && cp target/release/wagate /usr/local/bin/wagate \
    && /usr/local/bin/wagate version

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin wagate \
    && mkdir -p /data \
    && chown wagate:wagate /data
COPY --from=build /usr/local/bin/wagate /usr/local/bin/wagate
USER wagate
ENV WAGATE_DATA_DIR=/data \
    WAGATE_HOST=0.0.0.0 \
    PORT=3000 \
    WAGATE_LOG_FORMAT=json
VOLUME ["/data"]
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD curl -fsS http://127.0.0.1:3000/ready || exit 1
ENTRYPOINT ["wagate"]
CMD ["serve"]

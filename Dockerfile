# corpintel/api — the platform API (`corpintel api`): the static corpintel binary, built by
# `make bin` into bin/corpintel, on the project's own Debian base. Build with `make images`
# (images/build.sh stages bin/corpintel and this file; see images/README.md).
FROM corpintel/base:bookworm

RUN set -eux; \
	groupadd --gid 10001 corpintel; \
	useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin corpintel

COPY bin/corpintel /usr/local/bin/corpintel

USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=2s --timeout=3s --retries=3 --start-period=10s CMD ["/usr/local/bin/corpintel", "api", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/corpintel"]
CMD ["api"]

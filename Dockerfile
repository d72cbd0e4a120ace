# Nexus Proxy node image.
#   docker build -t nexus-proxy .
#   docker run -d --name nexus -p 80:80 -p 443:443 -p 8443:8443 -p 8444:8444 \
#     -v /etc/nexus-proxy:/etc/nexus-proxy:ro -v nexus-state:/var/lib/nexus-proxy nexus-proxy
# Reload the configuration: docker kill --signal HUP nexus. Logs: docker logs nexus (JSON lines).
# See docs/deploy.md.

# ── build: compile every package, then pack the publishable ones as tarballs ──
FROM node:20-slim AS build
WORKDIR /src
COPY . .
RUN npm ci --no-audit --no-fund \
 && npm run build \
 && mkdir /pack \
 && for p in sni mux-protocol common core backend-client cli; do \
      (cd "packages/$p" && npm pack --pack-destination /pack); \
    done

# ── runtime: the tarballs installed as a user would, production dependencies only ──
FROM node:20-slim
ENV NODE_ENV=production
WORKDIR /opt/nexus-proxy
COPY --from=build /pack /tmp/pack
# One `npm install` of all six tarballs, so the @nexus-proxy/* dependencies resolve to them.
RUN echo '{"name":"nexus-proxy-runtime","version":"0.0.0","private":true}' > package.json \
 && npm install --omit=dev --no-audit --no-fund --no-package-lock /tmp/pack/*.tgz \
 && ln -s /opt/nexus-proxy/node_modules/.bin/nexus-proxy /usr/local/bin/nexus-proxy \
 && ln -s /opt/nexus-proxy/node_modules/.bin/nexus-backend /usr/local/bin/nexus-backend \
 && rm -rf /tmp/pack \
 && npm cache clean --force \
 && mkdir -p /etc/nexus-proxy /var/lib/nexus-proxy \
 && chown node:node /var/lib/nexus-proxy

# The image's `node` user (uid 1000). Docker lets containers bind ports below 1024 without root
# (net.ipv4.ip_unprivileged_port_start=0); other runtimes may need that sysctl or CAP_NET_BIND_SERVICE.
USER node
# The one writable place: point acmeCacheDir here (e.g. /var/lib/nexus-proxy/acme).
WORKDIR /var/lib/nexus-proxy
VOLUME ["/var/lib/nexus-proxy"]
EXPOSE 80 443 8443 8444
STOPSIGNAL SIGTERM
ENTRYPOINT ["nexus-proxy"]
CMD ["serve", "-c", "/etc/nexus-proxy/config.yaml"]

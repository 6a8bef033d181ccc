#!/bin/sh
# Installs what sluice needs to build and test on Debian 12; a no-op when everything is present.
set -e
PKGS="build-essential pkg-config python3 clang llvm libbpf-dev libelf-dev bpftool
liburing-dev libsqlite3-dev sqlite3 zlib1g-dev libzstd-dev liblz4-dev libsnappy-dev
libcurl4-openssl-dev libssl-dev libpq-dev libxdp-dev
kcat librdkafka-dev python3-confluent-kafka python3-cryptography libclang-rt-14-dev iproute2 procps psmisc util-linux
postgresql haproxy nftables ethtool iperf3 prometheus"

missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "deps: missing packages:$missing (run as root, or apt-get install them)" >&2
        exit 1
    fi
    echo "deps: installing$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# Node.js and npm run the S3 test server (s3rver, in tests/s3). Checked by command rather than by
# package: NodeSource's nodejs bundles npm and conflicts with Debian's npm package.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then
        echo "deps: node and npm are missing (run as root, or apt-get install nodejs npm)" >&2
        exit 1
    fi
    echo "deps: installing nodejs npm"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
S3_DIR="$(dirname "$0")/../tests/s3"
if [ ! -d "$S3_DIR/node_modules/s3rver" ]; then
    echo "deps: installing s3rver into tests/s3"
    npm install --prefix "$S3_DIR" --no-audit --no-fund
fi

# The JavaScript Kafka clients the tests drive (kafkajs, @platformatic/kafka), with a Node.js new
# enough for the latter (the npm package "node"; Debian 12's nodejs is 18), into tests/js.
JS_DIR="$(dirname "$0")/../tests/js"
if [ ! -x "$JS_DIR/node_modules/.bin/node" ] || [ ! -d "$JS_DIR/node_modules/kafkajs" ] ||
        [ ! -d "$JS_DIR/node_modules/@platformatic/kafka" ]; then
    echo "deps: installing kafkajs, @platformatic/kafka and Node.js 22 into tests/js"
    npm install --prefix "$JS_DIR" --no-audit --no-fund
fi

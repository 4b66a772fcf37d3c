#!/usr/bin/env bash
# A local Wharf cluster to try: three NATS JetStream servers, two collectors storing every
# topic with 3 replicas, a shipper sending to both; `wharf tail` until Ctrl-C, then all of it
# stopped. Everything lives in ./wharf-cluster (see scripts/quickstart.sh for the details).
exec "$(dirname "${BASH_SOURCE[0]}")/quickstart.sh" --cluster "$@"

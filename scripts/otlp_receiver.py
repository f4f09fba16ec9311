#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A minimal OTLP metrics receiver for skewscope's tests: gRPC and HTTP/protobuf.

It decodes every ExportMetricsServiceRequest with the official OTLP protobuf bindings
(`opentelemetry-proto`, `grpcio`; `make deps` installs them into scripts/.venv) and
appends one JSON line per request to --out:

  {"transport": "grpc" | "http", "received_unix": float, "headers": {name: value},
   "resource_metrics": [{"resource": {key: value},
     "scope_metrics": [{"scope": {"name": str, "version": str},
       "metrics": [{"name", "unit", "description",
                    "type": "gauge" | "sum" | "histogram",
                    "monotonic": bool | null, "temporality": "cumulative" | "delta" | null,
                    "points": [{"attributes": {key: value}, "value": number}
                             | {"attributes", "count", "sum", "bucket_counts",
                                "explicit_bounds", "min", "max"}]}]}]}]}

On start it prints one line to stdout, {"ready": true, "grpc_port": N, "http_port": N|null},
once both listeners are bound (port 0 picks a free one).

Fault modes for the agent's failure tests: --delay-secs (a slow collector that answers
late) and --fail-with CODE (a collector that refuses: a gRPC status, HTTP 503 or 429).
"""

import argparse
import gzip
import json
import signal
import sys
import threading
import time
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)

_lock = threading.Lock()


def any_value(v):
    kind = v.WhichOneof("value")
    if kind == "string_value":
        return v.string_value
    if kind == "int_value":
        return v.int_value
    if kind == "double_value":
        return v.double_value
    if kind == "bool_value":
        return v.bool_value
    if kind == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in v.kvlist_value.values}
    if kind == "bytes_value":
        return v.bytes_value.hex()
    return None


def attributes(kvs):
    return {kv.key: any_value(kv.value) for kv in kvs}


TEMPORALITY = {0: None, 1: "delta", 2: "cumulative"}


def number_point(p):
    value = p.as_double if p.WhichOneof("value") == "as_double" else p.as_int
    return {
        "attributes": attributes(p.attributes),
        "value": value,
        "start_time_unix_nano": p.start_time_unix_nano,
        "time_unix_nano": p.time_unix_nano,
    }


def histogram_point(p):
    return {
        "attributes": attributes(p.attributes),
        "count": p.count,
        "sum": p.sum,
        "bucket_counts": list(p.bucket_counts),
        "explicit_bounds": list(p.explicit_bounds),
        "min": p.min if p.HasField("min") else None,
        "max": p.max if p.HasField("max") else None,
    }


def metric(m):
    out = {"name": m.name, "unit": m.unit, "description": m.description}
    kind = m.WhichOneof("data")
    if kind == "gauge":
        out.update(type="gauge", monotonic=None, temporality=None,
                   points=[number_point(p) for p in m.gauge.data_points])
    elif kind == "sum":
        out.update(type="sum", monotonic=m.sum.is_monotonic,
                   temporality=TEMPORALITY.get(m.sum.aggregation_temporality),
                   points=[number_point(p) for p in m.sum.data_points])
    elif kind == "histogram":
        out.update(type="histogram", monotonic=None,
                   temporality=TEMPORALITY.get(m.histogram.aggregation_temporality),
                   points=[histogram_point(p) for p in m.histogram.data_points])
    else:
        out.update(type=kind, monotonic=None, temporality=None, points=[])
    return out


def record(out_path, transport, headers, request):
    line = {
        "transport": transport,
        "received_unix": time.time(),
        "headers": headers,
        "resource_metrics": [
            {
                "resource": attributes(rm.resource.attributes),
                "scope_metrics": [
                    {
                        "scope": {"name": sm.scope.name, "version": sm.scope.version},
                        "metrics": [metric(m) for m in sm.metrics],
                    }
                    for sm in rm.scope_metrics
                ],
            }
            for rm in request.resource_metrics
        ],
    }
    text = json.dumps(line, sort_keys=True) + "\n"
    with _lock, open(out_path, "a", encoding="utf-8") as f:
        f.write(text)
        f.flush()


class MetricsService(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, args):
        self.args = args

    def Export(self, request, context):
        if self.args.delay_secs:
            time.sleep(self.args.delay_secs)
        if self.args.fail_with:
            context.abort(getattr(grpc.StatusCode, self.args.fail_with), "refused by test")
        headers = {k: v for k, v in context.invocation_metadata()}
        record(self.args.out, "grpc", headers, request)
        return metrics_service_pb2.ExportMetricsServiceResponse()


def http_handler(args):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_):
            pass

        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            if args.delay_secs:
                time.sleep(args.delay_secs)
            if self.path != "/v1/metrics":
                return self.reply(404, b"")
            if args.fail_with:
                return self.reply(429 if args.fail_with == "RESOURCE_EXHAUSTED" else 503, b"")
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            request = metrics_service_pb2.ExportMetricsServiceRequest()
            request.ParseFromString(body)
            headers = {k.lower(): v for k, v in self.headers.items()}
            record(args.out, "http", headers, request)
            self.reply(200, metrics_service_pb2.ExportMetricsServiceResponse().SerializeToString())

        def reply(self, code, body):
            self.send_response(code)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="append one JSON line per request here")
    ap.add_argument("--grpc-port", type=int, default=0)
    ap.add_argument("--http-port", type=int, default=None, help="also serve OTLP/HTTP")
    ap.add_argument("--delay-secs", type=float, default=0.0, help="answer this late")
    ap.add_argument("--fail-with", default=None,
                    help="refuse every export with this gRPC status (e.g. UNAVAILABLE)")
    ap.add_argument("--tls-cert", help="server certificate (PEM): serve gRPC over TLS")
    ap.add_argument("--tls-key", help="server key (PEM)")
    ap.add_argument("--tls-client-ca", help="require client certificates signed by this CA")
    args = ap.parse_args()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(MetricsService(args), server)
    address = f"127.0.0.1:{args.grpc_port}"
    if args.tls_cert:
        with open(args.tls_key, "rb") as k, open(args.tls_cert, "rb") as c:
            pair = (k.read(), c.read())
        client_ca = None
        if args.tls_client_ca:
            with open(args.tls_client_ca, "rb") as f:
                client_ca = f.read()
        creds = grpc.ssl_server_credentials(
            [pair], root_certificates=client_ca, require_client_auth=client_ca is not None
        )
        grpc_port = server.add_secure_port(address, creds)
    else:
        grpc_port = server.add_insecure_port(address)
    if grpc_port == 0:
        sys.exit(f"cannot bind gRPC to {address}")
    server.start()

    http_port = None
    if args.http_port is not None:
        httpd = ThreadingHTTPServer(("127.0.0.1", args.http_port), http_handler(args))
        httpd.daemon_threads = True
        http_port = httpd.server_address[1]
        threading.Thread(target=httpd.serve_forever, daemon=True).start()

    print(json.dumps({"ready": True, "grpc_port": grpc_port, "http_port": http_port}), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop(0)


if __name__ == "__main__":
    main()

"""The official OpenTelemetry Python propagators of jaeger, ottrace and xray, as a peer.

    peer.py write N SEED   N random contexts per format, written by the official propagator
    peer.py read           headers we wrote (a JSON list on stdin), read by it

Both print JSON on stdout. A context is {"format", "trace_id" (32 hex), "span_id" (16 hex),
"sampled", "baggage" ({key: value})}; "write" adds the "headers" it wrote, "read" answers
{"valid": false} for headers it did not accept. Used by tests/interop_python.rs.
"""

import json
import random
import sys

from opentelemetry import baggage, trace
from opentelemetry.context import Context
from opentelemetry.propagators.aws import AwsXRayPropagator
from opentelemetry.propagators.jaeger import JaegerPropagator
from opentelemetry.propagators.ot_trace import OTTracePropagator
from opentelemetry.propagators.textmap import Getter

PROPAGATORS = {
    "jaeger": JaegerPropagator(),
    "ottrace": OTTracePropagator(),
    "xray": AwsXRayPropagator(),
}
# X-Ray carries no baggage.
WITH_BAGGAGE = {"jaeger", "ottrace"}
KEY_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789-_"
# The ot-trace propagator does not write keys with `-` (its header-name check omits it).
OT_KEY_CHARS = KEY_CHARS.replace("-", "")
# ottrace sends values unencoded in a header: visible ASCII and inner spaces only.
ASCII_VALUE_CHARS = "abcXYZ019 !#$&'()*+-./:<=>?@[]^_`{|}~%,;"
VALUE_CHARS = ASCII_VALUE_CHARS + "éü☃\"\\"


class HeaderGetter(Getter):
    """A dict of headers, read case-insensitively as HTTP header names are."""

    def get(self, carrier, key):
        for name, value in carrier.items():
            if name.lower() == key.lower():
                return [value]
        return None

    def keys(self, carrier):
        return [name.lower() for name in carrier]


def random_value(rng, chars):
    value = "".join(rng.choice(chars) for _ in range(rng.randint(1, 12)))
    # Surrounding spaces are not kept by header transport.
    return value.strip() or "v"


def random_context(rng, fmt):
    entries = {}
    if fmt in WITH_BAGGAGE:
        chars = VALUE_CHARS if fmt == "jaeger" else ASCII_VALUE_CHARS
        key_chars = KEY_CHARS if fmt == "jaeger" else OT_KEY_CHARS
        for _ in range(rng.randint(0, 4)):
            key = rng.choice("abcdefghijklmnopqrstuvwxyz") + "".join(
                rng.choice(key_chars) for _ in range(rng.randint(0, 8))
            )
            entries[key] = random_value(rng, chars)
    return {
        "format": fmt,
        "trace_id": f"{rng.getrandbits(128) | 1:032x}",
        "span_id": f"{rng.getrandbits(64) | 1:016x}",
        "sampled": rng.random() < 0.5,
        "baggage": entries,
    }


def write(n, seed):
    rng = random.Random(seed)
    out = []
    for fmt, propagator in PROPAGATORS.items():
        for _ in range(n):
            cx = random_context(rng, fmt)
            span_context = trace.SpanContext(
                trace_id=int(cx["trace_id"], 16),
                span_id=int(cx["span_id"], 16),
                is_remote=True,
                trace_flags=trace.TraceFlags(1 if cx["sampled"] else 0),
            )
            context = trace.set_span_in_context(trace.NonRecordingSpan(span_context), Context())
            for key, value in cx["baggage"].items():
                context = baggage.set_baggage(key, value, context)
            headers = {}
            propagator.inject(headers, context)
            cx["headers"] = headers
            out.append(cx)
    return out


def read(items):
    out = []
    getter = HeaderGetter()
    for item in items:
        context = PROPAGATORS[item["format"]].extract(item["headers"], Context(), getter)
        span_context = trace.get_current_span(context).get_span_context()
        if not span_context.is_valid:
            out.append({"valid": False})
            continue
        out.append(
            {
                "valid": True,
                "format": item["format"],
                "trace_id": f"{span_context.trace_id:032x}",
                "span_id": f"{span_context.span_id:016x}",
                "sampled": span_context.trace_flags.sampled,
                "baggage": {k: str(v) for k, v in baggage.get_all(context).items()},
            }
        )
    return out


def main():
    if sys.argv[1:2] == ["write"]:
        result = write(int(sys.argv[2]), int(sys.argv[3]))
    elif sys.argv[1:2] == ["read"]:
        result = read(json.load(sys.stdin))
    else:
        sys.exit(__doc__)
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Writes fuzz/seeds/<target>/ from the table vectors of tests/ (and the checker's Istio
fixtures): the string literals each format's tables hold. Run from anywhere; the seeds are
committed, so this only needs running again when the tables change."""
import hashlib, pathlib, re

root = pathlib.Path(__file__).resolve().parent.parent
seeds = root / "fuzz" / "seeds"
lit = re.compile(r'"((?:[^"\\]|\\.)*)"')

def literals(*files):
    out = []
    for f in files:
        for m in lit.finditer((root / "tests" / f).read_text()):
            s = m.group(1).encode().decode("unicode_escape", "ignore")
            if s:
                out.append(s.encode("latin-1", "ignore"))
    return out

def write(target, items):
    d = seeds / target
    d.mkdir(parents=True, exist_ok=True)
    for item in set(items):
        (d / hashlib.sha1(item).hexdigest()).write_bytes(item)
    return len(set(items))

counts = {
    "traceparent": write("traceparent", literals("vectors_traceparent.rs", "w3c_level2.rs")),
    "baggage": write("baggage", literals("vectors_baggage.rs")),
    "b3": write("b3", literals("vectors_b3.rs")),
    "jaeger_ottrace_xray": write("jaeger_ottrace_xray", literals("vectors_jaeger.rs", "vectors_ottrace.rs", "vectors_xray.rs")),
    "grpc_timeout": write("grpc_timeout", [s for s in literals("deadline.rs", "timeouts.rs") if len(s) < 40]),
    "istio_yaml": write("istio_yaml", [p.read_bytes() for p in (root / "tests" / "fixtures").rglob("*.yaml")]),
}
# The whole extract: each composite table literal as a line of its own, and one full Istio
# request as seen by the benches.
lines = literals("vectors_composite.rs")
names = [l for l in lines if re.fullmatch(rb"[a-z0-9-]+", l)]
pairs = [n + b":" + v for n, v in zip(lines, lines[1:]) if n in names and v not in names]
istio = b"\n".join([
    b"x-request-id:6f3a2c1e-9b8d-4e7f-a1c2-3d4e5f6a7b8c",
    b"x-b3-traceid:4bf92f3577b34da6a3ce929d0e0e4736",
    b"x-b3-spanid:00f067aa0ba902b7",
    b"x-b3-parentspanid:a3ce929d0e0e4736",
    b"x-b3-sampled:1",
    b"traceparent:00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    b"tracestate:rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
    b"baggage:userId=alice,serverNode=DF%2028,isProduction=false",
    b"x-ot-span-context:4bf92f3577b34da6;00f067aa0ba902b7;a3ce929d0e0e4736;cs",
])
counts["extract"] = write("extract", pairs + [istio])
for target, n in counts.items():
    print(f"{target}: {n} seeds")
